-- Subscribing must not be a way to mail-bomb someone.
--
-- One pending (unconfirmed) subscription per address, whatever its filter. Before this, one pending
-- subscription per (address, filter) let anyone send an address a confirmation per filter they could
-- think of. Now a request for another filter takes over the address's pending subscription (its link
-- confirms what was asked last), so a confirmation goes out at most once per resend wait.
--
-- confirmation_sends is what the per-address limit counts (SUBSCRIBE_ADDRESS_LIMIT confirmation
-- emails per SUBSCRIBE_ADDRESS_WINDOW_HOURS). It lives in the database because every web process
-- and every worker sends confirmations, so only a shared count holds. It keeps a hash of the
-- address, not the address: it is needed only to count, and rows older than the window are deleted
-- as confirmations go out.

CREATE TABLE confirmation_sends (
    address_hash  bytea NOT NULL,        -- sha256 of lower(email), UTF-8
    sent_at       timestamptz NOT NULL
);

CREATE INDEX confirmation_sends_address_idx ON confirmation_sends (address_hash, sent_at);
CREATE INDEX confirmation_sends_sent_idx ON confirmation_sends (sent_at);

-- Confirmations that went out during the last day count against the limit from the start. Only
-- pending rows are certain to have been mailed (an operator's confirmed subscription was not).
INSERT INTO confirmation_sends (address_hash, sent_at)
SELECT sha256(convert_to(lower(email), 'UTF8')), confirm_sent_at
FROM subscriptions
WHERE state = 'pending' AND confirm_sent_at > now() - interval '1 day';

-- Where the old rule left several pending subscriptions to one address, the newest request stays;
-- the older ones end as unsubscribed, saying why (their links then answer "subscribe again").
UPDATE subscriptions AS older
SET state = 'unsubscribed', unsubscribed_at = now(), updated_at = now(),
    last_error = 'superseded: one pending subscription per address, the newest request kept'
WHERE older.state = 'pending'
  AND EXISTS (SELECT 1 FROM subscriptions AS newer
              WHERE newer.state = 'pending' AND lower(newer.email) = lower(older.email) AND newer.id > older.id);

CREATE UNIQUE INDEX subscriptions_one_pending_idx ON subscriptions (lower(email)) WHERE state = 'pending';
