-- Stories: the posts of many outlets that report one event, grouped at ingest.
-- posts.story_id says which story a post is in (every post clustered since this migration has one);
-- a story merged into an older one keeps its row with merged_into set, so old links redirect.
-- post_story_keys holds what clustering compares: the rare keys a post is found by (GIN) and its
-- features, so a new post is compared with a handful of candidates and nothing is recomputed.
-- story_seq is the order posts were clustered in: `aggregator recluster` replays that order.
-- Surge alerts count stories per day by the date of their first post that is not quiet.

CREATE TABLE stories (
    id              bigserial PRIMARY KEY,
    title           text NOT NULL DEFAULT '',
    origin_post_id  bigint NOT NULL UNIQUE,           -- the post that started it (recluster reuses the id)
    first_post_id   bigint,
    first_seen_at   timestamptz NOT NULL,          -- the first post's date (sort_at)
    last_seen_at    timestamptz NOT NULL,          -- the latest post's date
    post_count      integer NOT NULL DEFAULT 0,
    source_count    integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),  -- last time a post joined (feeds' `updated`)
    merged_into     bigint REFERENCES stories (id) ON DELETE SET NULL
);
CREATE INDEX stories_live_idx ON stories (last_seen_at DESC, id DESC) WHERE merged_into IS NULL;

ALTER TABLE posts ADD COLUMN story_id bigint REFERENCES stories (id) ON DELETE SET NULL;
CREATE INDEX posts_story_idx ON posts (story_id, sort_at);

CREATE SEQUENCE story_seq;
CREATE TABLE post_story_keys (
    post_id     bigint PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    story_id    bigint,                -- posts.story_id again, so finding candidates reads this table only
    at          timestamptz NOT NULL,
    story_seq   bigint NOT NULL,
    keys        text[] NOT NULL,
    features    jsonb NOT NULL,
    -- stored by a backfill, a source's first poll, or dated well before it arrived (a feed
    -- republishing its archive): it joins stories but does not make a story count toward surges
    quiet       boolean NOT NULL DEFAULT false
);
CREATE INDEX post_story_keys_keys_idx ON post_story_keys USING gin (keys);
-- No index on `at`: with one, the planner walks the whole window and tests every row's keys.
CREATE INDEX post_story_keys_seq_idx ON post_story_keys (story_seq);
