-- The newest posts' rows carry the sources that carried each post, so a search's facet sample counts
-- its sources from recent_search alone.
--
-- The sample's sources were 500 look-ups in post_sources, one per sampled post: 0.5 ms of the 1.4 ms
-- the sample's statement took for a common word. The sources are now an array on the row already
-- read for the words, counted as the countries are.
-- post_sources changes apart from posts (another outlet carrying a post, a source removed), so its own
-- triggers keep the array; the posts triggers fill it when a post moves into the window.
ALTER TABLE recent_search ADD COLUMN sources bigint[] NOT NULL DEFAULT '{}';

UPDATE recent_search r
SET sources = carried.sources
FROM (SELECT ps.post_id, array_agg(ps.source_id ORDER BY ps.source_id) AS sources
      FROM post_sources ps JOIN recent_search held ON held.post_id = ps.post_id
      GROUP BY ps.post_id) AS carried
WHERE carried.post_id = r.post_id;

CREATE FUNCTION post_sources_of(post bigint) RETURNS bigint[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(source_id ORDER BY source_id), '{}') FROM post_sources WHERE post_id = post
$$;

-- Statement-level, as the facet triggers on post_sources: a poll links its new posts in one statement.
CREATE FUNCTION recent_search_sources() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE recent_search r SET sources = post_sources_of(r.post_id)
    WHERE r.post_id IN (SELECT DISTINCT post_id FROM changed_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION recent_search_sources_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE recent_search SET sources = '{}' WHERE sources <> '{}';
    RETURN NULL;
END $$;

CREATE TRIGGER post_sources_recent_search_insert AFTER INSERT ON post_sources REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION recent_search_sources();
CREATE TRIGGER post_sources_recent_search_delete AFTER DELETE ON post_sources REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION recent_search_sources();
CREATE TRIGGER post_sources_recent_search_truncate AFTER TRUNCATE ON post_sources
    FOR EACH STATEMENT EXECUTE FUNCTION recent_search_sources_reset();

-- A post's row made anew (a post moved into the window) carries its sources; one updated in place
-- keeps them (they change only through post_sources). A new post's row needs none: its sources are
-- linked after it is stored, which the triggers above see.
CREATE OR REPLACE FUNCTION recent_search_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sort_at >= (SELECT floor FROM recent_search_floor) THEN
        INSERT INTO recent_search (post_id, sort_at, search, lang, countries, primary_countries, topics, places,
                                   sources)
        VALUES (NEW.id, NEW.sort_at, NEW.search, NEW.lang, NEW.countries, NEW.primary_countries, NEW.topics,
                NEW.places, post_sources_of(NEW.id))
        ON CONFLICT (post_id) DO UPDATE
        SET sort_at = EXCLUDED.sort_at, search = EXCLUDED.search, lang = EXCLUDED.lang,
            countries = EXCLUDED.countries, primary_countries = EXCLUDED.primary_countries,
            topics = EXCLUDED.topics, places = EXCLUDED.places;
    ELSE
        DELETE FROM recent_search WHERE post_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
