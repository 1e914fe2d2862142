-- Country and topic tags of each post, with the evidence for each tag.
-- post_tags holds the full record (score, evidence, taxonomy version); the arrays on posts are
-- its filterable summary, written in the same transaction, indexed with GIN for the API.

CREATE TABLE post_tags (
    post_id           bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('country', 'topic')),
    code              text NOT NULL,
    role              text CHECK (role IN ('primary', 'mentioned')),
    score             real NOT NULL,
    evidence          jsonb NOT NULL DEFAULT '[]',
    taxonomy_version  text NOT NULL,
    PRIMARY KEY (post_id, kind, code),
    CHECK ((kind = 'country') = (role IS NOT NULL))
);

CREATE INDEX post_tags_code_idx ON post_tags (kind, code, role);

ALTER TABLE posts
    ADD COLUMN countries          text[] NOT NULL DEFAULT '{}',  -- every country tagged (primary or mentioned)
    ADD COLUMN primary_countries  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN topics             text[] NOT NULL DEFAULT '{}',
    ADD COLUMN taxonomy_version   text;

CREATE INDEX posts_countries_idx ON posts USING gin (countries);
CREATE INDEX posts_primary_countries_idx ON posts USING gin (primary_countries);
CREATE INDEX posts_topics_idx ON posts USING gin (topics);
CREATE INDEX posts_taxonomy_version_idx ON posts (taxonomy_version, id);
