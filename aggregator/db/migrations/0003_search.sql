-- Full-text search for the API: a stored tsvector per post, kept current by PostgreSQL itself.
--
-- Why 'english' and not 'simple': most of what the aggregator reads (analysis blogs, wire
-- services) is English, and stemming is what makes `q=sanction` find "sanctions" and "sanctioned".
-- Posts in other languages lose nothing that 'simple' would give them: the English stemmer only
-- strips English suffixes, so Cyrillic, Georgian or Armenian words are indexed lower-cased and
-- whole, exactly as 'simple' would; Latin-script words of other languages are stemmed the same way
-- at index and at query time, so they still match themselves. The cost is English stop words
-- ("the", "on") being unsearchable on their own, which websearch_to_tsquery users expect anyway.
--
-- The title weighs A, the text B, so ts_rank puts a word in the title above one in the body.
-- The text is capped so that a pathological post can never exceed tsvector's 1 MB limit and make
-- ingestion fail; 100,000 characters is far longer than any real article.

-- Keep the filterable part of a post narrow: text, html and the search vector move to TOAST once
-- a row passes 512 bytes instead of 2 kB. A filter or facet reading 10,000 posts then touches
-- ~1,000 heap pages instead of ~10,000, and the heap of a million posts fits in memory; only the
-- single-post view (and include=text) reads the moved columns. Set first: the next statement
-- rewrites the table.
ALTER TABLE posts SET (toast_tuple_target = 512);

ALTER TABLE posts ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, left(title, 1000)), 'A')
    || setweight(to_tsvector('english'::regconfig, left(text, 100000)), 'B')
) STORED;

CREATE INDEX posts_search_idx ON posts USING gin (search);

-- The planner decides between walking the date index and reading the search index from its
-- statistics on lexemes. At the default target only the ~1,000 most common lexemes are known and
-- every other word is guessed at 0.5 % of the posts, so a word in 60 posts of a million was
-- searched by walking 100,000 posts newest first (a second); tracking 10,000 lexemes makes it
-- estimate rare words as rare and read the index (a few milliseconds).
ALTER TABLE posts ALTER COLUMN search SET STATISTICS 1000;

-- Filtering by source starts from the link table: (source_id, post_id) answers it from the index alone.
CREATE INDEX post_sources_source_post_idx ON post_sources (source_id, post_id);

-- Facet counts, pre-aggregated by month, for the filters most facet requests use: none, one country
-- (mentioned or primary), one topic. Counting the matches of a common country live means reading a
-- third of the posts on every request; summing ~100 monthly rows per facet value does not.
-- facet_months is derived data. Writers never touch it: triggers only append the months they
-- changed to facet_dirty_months (no key, so concurrent writers never wait on each other), and
-- readers count dirty months live, so answers are exact whether or not the rollup is current.
-- aggregator.db.facets.refresh() recomputes dirty months.
CREATE TABLE facet_months (
    month  date NOT NULL,     -- first day of the month, UTC; '-infinity': all months together
    dim    text NOT NULL,     -- which posts: '' all | 'c:RU' mentioning RU | 'p:RU' primarily RU | 't:cyber'
    facet  text NOT NULL,     -- what is counted: 'c:KZ' | 't:military' | 's:12' (source id) | 'd:2025-01-06'
    posts  integer NOT NULL,
    PRIMARY KEY (dim, month, facet) INCLUDE (posts)  -- summing a dimension reads the index alone
);

CREATE TABLE facet_dirty_months (month date NOT NULL);

CREATE FUNCTION facet_month(ts timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_trunc('month', ts AT TIME ZONE 'UTC')::date;

CREATE FUNCTION facet_mark_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO facet_dirty_months SELECT DISTINCT facet_month(published_at) FROM new_rows;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO facet_dirty_months SELECT DISTINCT facet_month(published_at) FROM old_rows;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION facet_mark_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO facet_dirty_months
        SELECT DISTINCT facet_month(p.published_at) FROM new_rows n JOIN posts p ON p.id = n.post_id;
    ELSE
        INSERT INTO facet_dirty_months
        SELECT DISTINCT facet_month(p.published_at) FROM old_rows o JOIN posts p ON p.id = o.post_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION facet_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM facet_months;
    DELETE FROM facet_dirty_months;
    RETURN NULL;
END $$;

CREATE TRIGGER posts_facets_insert AFTER INSERT ON posts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION facet_mark_posts();
CREATE TRIGGER posts_facets_update AFTER UPDATE ON posts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION facet_mark_posts();
CREATE TRIGGER posts_facets_delete AFTER DELETE ON posts REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION facet_mark_posts();
CREATE TRIGGER posts_facets_truncate AFTER TRUNCATE ON posts
    FOR EACH STATEMENT EXECUTE FUNCTION facet_reset();
CREATE TRIGGER post_sources_facets_insert AFTER INSERT ON post_sources REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION facet_mark_links();
CREATE TRIGGER post_sources_facets_delete AFTER DELETE ON post_sources REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION facet_mark_links();
