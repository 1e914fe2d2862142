-- Since 0015 the window is kept in memory and candidates are found there, so the rare keys each row
-- carried (names, places, numbers, MinHash bands: ~25 strings a post) were written at every turn and
-- never read. The features they are computed from stay.
ALTER TABLE post_story_keys DROP COLUMN keys;
