-- A post's story lives in post_story_keys only (written once, with the row clustering replays).
-- posts.story_id said it again, and setting it cost a second version of every new post: the
-- column is indexed, so that UPDATE could not be HOT, and each new post went into all of posts'
-- indexes twice (five of them GIN): about 0.2 ms a post, most of what clustering added to ingest.
-- Readers now join post_story_keys (one row per clustered post, by its primary key), and a story's
-- posts are found through the index below. No foreign key to stories: its check would lock the
-- story's row at every insert; stories are deleted only when no post is in them (prune_empty,
-- under the clustering lock), and merged ones keep their rows.

-- What readers saw wins where the two disagree (only a hand edit could make them).
UPDATE post_story_keys k SET story_id = p.story_id
FROM posts p
WHERE p.id = k.post_id AND p.story_id IS NOT NULL AND k.story_id IS DISTINCT FROM p.story_id;

INSERT INTO post_story_keys (post_id, story_id, at, story_seq, features, quiet)
SELECT p.id, p.story_id, p.sort_at, nextval('story_seq'), '{}', true
FROM posts p
WHERE p.story_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM post_story_keys k WHERE k.post_id = p.id)
ORDER BY p.id;

CREATE INDEX post_story_keys_story_idx ON post_story_keys (story_id);
ALTER TABLE posts DROP COLUMN story_id;
