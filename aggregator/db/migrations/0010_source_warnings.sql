-- What the last poll that read a feed's body noticed without failing: entries beyond
-- AGGREGATOR_MAX_ENTRIES_PER_POLL left out, over-long fields cut, ill-formed XML recovered.
-- A warning is not an error: it never counts toward disabling the feed. Empty when all was well;
-- a poll answered 304 (or with the same body) keeps what the last read said.
ALTER TABLE sources ADD COLUMN last_warnings text[] NOT NULL DEFAULT '{}';
