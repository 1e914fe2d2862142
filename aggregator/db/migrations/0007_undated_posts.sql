-- Posts whose feed gives no date keep no date.
--
-- Before this, an entry without a date was stored with the time of the poll that first saw it, as
-- if the feed had said so; such a post looked like the newest news on the day it arrived and could
-- not be told apart from a dated one. Now posts.published_at is what the feed said (NULL when it
-- said nothing), and posts.sort_at is the one moment every list, feed, facet and date filter uses:
-- the feed's date, else the arrival time (first_seen_at, which never changes). The API and the
-- feeds say when a date is an estimate (published_at IS NULL).
--
-- Posts stored before this migration cannot be told apart: an undated one carries the time it was
-- first seen as its published_at, like a dated one. They are left as they are (date_estimated is
-- false for them); nothing here guesses which were undated.

ALTER TABLE posts ALTER COLUMN published_at DROP NOT NULL;

-- Generated, so it cannot drift from the two columns it is made of; the next statement rewrites
-- the table once.
ALTER TABLE posts ADD COLUMN sort_at timestamptz NOT NULL GENERATED ALWAYS AS (coalesce(published_at, first_seen_at)) STORED;

-- The keyset index of every list and feed moves to the sort key.
DROP INDEX posts_published_idx;
CREATE INDEX posts_sort_idx ON posts (sort_at DESC, id DESC);

-- Facet months follow the sort key (a NULL published_at has no month). Every post stored so far
-- has sort_at = published_at, so the rollup stays valid as it is.
CREATE OR REPLACE FUNCTION facet_mark_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO facet_dirty_months SELECT DISTINCT facet_month(sort_at) FROM new_rows;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO facet_dirty_months SELECT DISTINCT facet_month(sort_at) FROM old_rows;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION facet_mark_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO facet_dirty_months
        SELECT DISTINCT facet_month(p.sort_at) FROM new_rows n JOIN posts p ON p.id = n.post_id;
    ELSE
        INSERT INTO facet_dirty_months
        SELECT DISTINCT facet_month(p.sort_at) FROM old_rows o JOIN posts p ON p.id = o.post_id;
    END IF;
    RETURN NULL;
END $$;
