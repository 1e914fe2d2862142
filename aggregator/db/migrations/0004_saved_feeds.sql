-- Filtered feeds: named saved feeds, and a change signal that lets web processes answer feed polls
-- from memory.
--
-- saved_feeds keeps a filter (the canonical query string of /feeds/atom?…) under a short slug, so
-- /feeds/{slug}.atom is a stable URL that can be shared while the filter behind it is refined.
CREATE TABLE saved_feeds (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    title       text CHECK (length(title) <= 300),
    query       text NOT NULL,                    -- canonical: parameters sorted, codes normalized
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Why a NOTIFY and not a "newest changed_at" check: posts.changed_at is the time the poll *started*
-- (seconds before its transaction commits), and re-tagging changes a post's countries and topics
-- without touching it, so no column of posts orders changes by commit. A notification is delivered
-- only after its transaction commits, in commit order. Web processes LISTEN on this channel and
-- drop the feeds they have rendered when it fires, so a feed poll between two changes costs no query.
-- Statement-level, and only when rows really changed: a poll that stores nothing signals nothing.
CREATE FUNCTION feeds_signal_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' OR EXISTS (SELECT 1 FROM changed_rows) THEN
        PERFORM pg_notify('aggregator_feeds_changed', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION feeds_signal_always() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('aggregator_feeds_changed', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER posts_feeds_insert AFTER INSERT ON posts REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION feeds_signal_change();
CREATE TRIGGER posts_feeds_update AFTER UPDATE ON posts REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION feeds_signal_change();
CREATE TRIGGER posts_feeds_delete AFTER DELETE ON posts REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION feeds_signal_change();
CREATE TRIGGER posts_feeds_truncate AFTER TRUNCATE ON posts
    FOR EACH STATEMENT EXECUTE FUNCTION feeds_signal_always();

-- A saved feed's definition is part of what /feeds/{slug}.atom renders.
CREATE TRIGGER saved_feeds_feeds_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON saved_feeds
    FOR EACH STATEMENT EXECUTE FUNCTION feeds_signal_always();
