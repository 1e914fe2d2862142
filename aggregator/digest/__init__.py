"""Daily digest emails: subscriptions to a filter, one email a day per subscription, exactly once.

build (pure: posts -> grouped, collapsed digest) -> render (templates -> MIME message) ->
send (SMTP or Maildir: the edge where smtplib errors are mapped); schedule (pure: which period is
due), tokens (signed links), service (send_due: claims, sends and records), commands (CLI + job).
"""
