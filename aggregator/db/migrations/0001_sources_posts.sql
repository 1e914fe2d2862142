-- Sources (feeds), posts, the link between them, and a log of every fetch.
-- Correctness lives here: unique keys make ingestion idempotent, leases keep two workers off one feed.

CREATE TABLE sources (
    id                    bigserial PRIMARY KEY,
    url                   text NOT NULL UNIQUE,
    previous_urls         text[] NOT NULL DEFAULT '{}',    -- before permanent redirects
    name                  text,
    title                 text,
    site_url              text,
    default_countries     text[] NOT NULL DEFAULT '{}',
    default_topics        text[] NOT NULL DEFAULT '{}',
    origin                text NOT NULL DEFAULT 'cli',     -- config | cli | opml | api
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text,
    etag                  text,
    last_modified         text,
    body_hash             text,
    poll_interval         integer NOT NULL,                -- seconds, adapted to the publishing rhythm
    server_min_interval   integer NOT NULL DEFAULT 0,      -- seconds, from TTL / Cache-Control
    next_poll_at          timestamptz NOT NULL DEFAULT now(),
    lease_owner           text,
    lease_until           timestamptz,
    last_polled_at        timestamptz,
    last_success_at       timestamptz,
    last_new_post_at      timestamptz,
    last_error            text,
    last_error_kind       text,
    last_error_at         timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    permanent_failures    integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sources_due_idx ON sources (next_poll_at) WHERE enabled;

CREATE TABLE posts (
    id              bigserial PRIMARY KEY,
    dedup_key       text NOT NULL UNIQUE,
    url             text,
    title           text NOT NULL,
    author          text,
    published_at    timestamptz NOT NULL,          -- the feed's date, else when first seen
    updated_at      timestamptz,
    categories      text[] NOT NULL DEFAULT '{}',
    html            text NOT NULL,
    text            text NOT NULL,
    summary         text NOT NULL,
    lang            text,
    content_hash    text NOT NULL,
    source_id       bigint REFERENCES sources (id) ON DELETE SET NULL,  -- the source it came from first
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    changed_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX posts_url_idx ON posts (url) WHERE url IS NOT NULL;
CREATE INDEX posts_published_idx ON posts (published_at DESC, id DESC);

-- One article can arrive from several feeds (a blog's Atom and RSS forms, a syndicated story).
CREATE TABLE post_sources (
    post_id        bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    source_id      bigint NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    guid           text NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, source_id)
);

CREATE INDEX post_sources_source_idx ON post_sources (source_id, guid);

CREATE TABLE fetch_log (
    id             bigserial PRIMARY KEY,
    source_id      bigint NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    worker         text NOT NULL,
    due_at         timestamptz,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    outcome        text NOT NULL,                  -- ok | not_modified | unchanged | error
    status         integer,
    error_kind     text,
    error          text,
    entries        integer NOT NULL DEFAULT 0,
    new_posts      integer NOT NULL DEFAULT 0,
    updated_posts  integer NOT NULL DEFAULT 0
);

CREATE INDEX fetch_log_source_idx ON fetch_log (source_id, started_at DESC);
CREATE INDEX fetch_log_started_idx ON fetch_log (started_at);
