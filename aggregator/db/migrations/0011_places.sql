-- Places below the country (Chechnya, the Fergana Valley, Gorno-Badakhshan, ...), stored like countries:
-- post_tags rows of kind 'place' hold the score and evidence; posts.places is their filterable summary,
-- GIN-indexed for `place=` and for regions that are part of a country (`region=north-caucasus`).
-- The column starts empty; `aggregator retag` fills it for stored posts.

ALTER TABLE post_tags DROP CONSTRAINT post_tags_kind_check;
ALTER TABLE post_tags ADD CONSTRAINT post_tags_kind_check CHECK (kind IN ('country', 'topic', 'place'));

ALTER TABLE posts ADD COLUMN places text[] NOT NULL DEFAULT '{}';

CREATE INDEX posts_places_idx ON posts USING gin (places);
