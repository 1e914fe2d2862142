-- The date index carries each post's tag arrays and language, so a page of a tag filter is found
-- from the index alone.
--
-- A country and a topic together (KZ and terrorism) are in about 1 % of posts: their newest page
-- is found by walking the date index from the newest post and testing each one, some 2,400 of
-- them. Each test fetched the post's row, one buffer a post: 2.2 ms of a page's 3 ms in
-- PostgreSQL on a million posts. With the arrays in the index entry, the walk tests the entry
-- itself (an index-only scan, 1.0 ms), and only the page's posts are fetched.
-- An entry is read alone only when its heap page is marked all-visible, which VACUUM does: newly
-- inserted posts are what pages walk first, so posts is vacuumed after every 1,000 new ones rather
-- than the default fifth of the table (200,000 on a million posts). Such a vacuum visits only the
-- pages changed since the last one.
CREATE INDEX posts_sort_tags_idx ON posts (sort_at DESC, id DESC)
    INCLUDE (countries, primary_countries, topics, places, lang);
DROP INDEX posts_sort_idx;
ALTER TABLE posts SET (autovacuum_vacuum_insert_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0);
