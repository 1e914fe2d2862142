-- Email subscriptions to a filter, and the daily digests sent to them.
-- Correctness lives here: one live subscription per (email, filter); one digest row per
-- (subscription, period), written before anything is sent, so a digest goes out once however many
-- schedulers run; the watermark says which arrivals the last delivered digest covered.

CREATE TABLE subscriptions (
    id               bigserial PRIMARY KEY,
    email            text NOT NULL,                   -- normalized (email-validator)
    filter           jsonb NOT NULL,                  -- canonical query parameters: {"country": [...], ...}
    filter_key       text NOT NULL,                   -- the same, as compact sorted JSON: equal filters, equal keys
    timezone         text NOT NULL,                   -- IANA name
    send_hour        smallint NOT NULL CHECK (send_hour BETWEEN 0 AND 23),
    format           text NOT NULL DEFAULT 'html' CHECK (format IN ('html', 'text')),
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'active', 'unsubscribed', 'bouncing')),
    origin           text NOT NULL DEFAULT 'api',     -- api | form | cli
    watermark        timestamptz,                     -- posts that arrived before this were covered
    confirm_sent_at  timestamptz,                     -- NULL: the confirmation email is still to be sent
    confirmed_at     timestamptz,
    unsubscribed_at  timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A second POST of the same email and filter finds the first instead of making a twin; once
-- unsubscribed, the same person may subscribe again. The address keeps the case it was given
-- (the local part is the receiving server's business) but compares case-blind, as everyone does.
CREATE UNIQUE INDEX subscriptions_live_idx ON subscriptions (lower(email), filter_key) WHERE state <> 'unsubscribed';
CREATE INDEX subscriptions_active_idx ON subscriptions (id) WHERE state = 'active';
CREATE INDEX subscriptions_unconfirmed_idx ON subscriptions (id) WHERE state = 'pending' AND confirm_sent_at IS NULL;

CREATE TABLE digests (
    id               bigserial PRIMARY KEY,
    subscription_id  bigint NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    period           date NOT NULL,                   -- the subscriber's local date it is for
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sending', 'sent', 'empty', 'failed')),
    window_start     timestamptz NOT NULL,            -- arrivals (posts.first_seen_at) from here ...
    window_end       timestamptz NOT NULL,            -- ... up to here, exclusive
    message_id       text NOT NULL UNIQUE,            -- stable across attempts: receivers can drop a repeat
    items            integer,                         -- posts it carried
    attempts         integer NOT NULL DEFAULT 0,      -- counted before each attempt, so a crash is counted too
    uncertain        boolean NOT NULL DEFAULT false,  -- an attempt was interrupted: it may have been delivered
    next_attempt_at  timestamptz NOT NULL,
    lease_owner      text,
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    UNIQUE (subscription_id, period)
);

CREATE INDEX digests_ready_idx ON digests (next_attempt_at) WHERE state = 'pending';
CREATE INDEX digests_sending_idx ON digests (lease_until) WHERE state = 'sending';
CREATE INDEX digests_unfinished_idx ON digests (subscription_id) WHERE state IN ('pending', 'sending');

-- The generated link-signing key, when settings name none: one row, made by whoever needs it first.
CREATE TABLE app_secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A digest reads the posts that arrived in its window.
CREATE INDEX posts_first_seen_idx ON posts (first_seen_at);
