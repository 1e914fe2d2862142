-- Digest windows bounded by snapshots, not by clock times.
--
-- A post's first_seen_at is the time its poll started; the post becomes visible when that poll
-- commits, seconds later. A window ending at a clock time T could therefore miss a post stamped
-- before T but committed after the window was read, so windows used to end 10 minutes in the past
-- and a digest sent right after a poll was empty.
--
-- Now every post records the transaction that stored it (arrival_xid), and a digest records the
-- snapshot taken when it was claimed (end_snapshot): it carries exactly the posts whose
-- transaction had committed by then (visible in its end snapshot) and that the previous delivered
-- digest did not carry (not visible in its start snapshot, the subscription's watermark_snapshot).
-- A transaction still in flight at the claim is in neither snapshot's past, so its posts go in the
-- next digest: every post committed before a digest is claimed is in it or in an earlier one, and
-- none is in two.
--
-- A window whose start snapshot is NULL starts at window_start by first_seen_at: a new
-- subscription's first digest (the day before confirming) and the first digest after this
-- migration. Digests claimed before it (end_snapshot NULL) end at window_end by first_seen_at, as
-- they did. Posts stored before this migration all carry the migration's own transaction id.

ALTER TABLE posts ADD COLUMN arrival_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX posts_arrival_idx ON posts (arrival_xid);

ALTER TABLE digests
    ADD COLUMN start_snapshot pg_snapshot,   -- NULL: the window starts at window_start (first_seen_at)
    ADD COLUMN end_snapshot pg_snapshot;     -- NULL: claimed before snapshots, ends at window_end

ALTER TABLE subscriptions ADD COLUMN watermark_snapshot pg_snapshot;  -- end_snapshot of the last delivered digest
