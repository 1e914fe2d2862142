-- Clustering decides in memory: each worker keeps the posts of the window and reads, under the
-- clustering lock, only the rows clustered since its last turn (by story_seq). So a row now says
-- all a reader needs to replay its decision: which stories it merged into its own (`merged`).
-- `story_clustering.epoch` changes when `aggregator recluster` rewrites assignments in place, so
-- workers reload their window instead of trusting what they remember.
-- Candidates are no longer looked up by key in SQL: the GIN index goes; loading the window reads
-- posts by date.
ALTER TABLE post_story_keys ADD COLUMN merged bigint[] NOT NULL DEFAULT '{}';
DROP INDEX post_story_keys_keys_idx;
CREATE INDEX post_story_keys_at_idx ON post_story_keys (at);

CREATE TABLE story_clustering (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch   bigint NOT NULL DEFAULT 0
);
INSERT INTO story_clustering DEFAULT VALUES;
