-- Full-text search in each post's own language: Russian posts are indexed with PostgreSQL's 'russian'
-- configuration (so "Казахстане" is found by "Казахстан"), English ones with 'english' (stemming as
-- before), every other language with 'simple' (lower-cased whole words: an English or Russian stemmer
-- would mangle Kazakh or Uzbek words). A post whose language is unknown keeps the 'english' index it
-- had under 0003, whose stemmer leaves non-Latin words whole anyway.
--
-- Queries are parsed with each configuration and OR-ed (aggregator/db/post_filters.py), so one query
-- finds a word in posts of every language; the one GIN index answers all of them.
-- Dropping and re-adding the generated column rewrites the table once.

ALTER TABLE posts DROP COLUMN search;

ALTER TABLE posts ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector(CASE WHEN lang = 'ru' THEN 'russian'::regconfig
                               WHEN lang = 'en' OR lang IS NULL THEN 'english'::regconfig
                               ELSE 'simple'::regconfig END, left(title, 1000)), 'A')
    || setweight(to_tsvector(CASE WHEN lang = 'ru' THEN 'russian'::regconfig
                                  WHEN lang = 'en' OR lang IS NULL THEN 'english'::regconfig
                                  ELSE 'simple'::regconfig END, left(text, 100000)), 'B')
) STORED;

CREATE INDEX posts_search_idx ON posts USING gin (search);

ALTER TABLE posts ALTER COLUMN search SET STATISTICS 1000;
