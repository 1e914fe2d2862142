-- The facet rollup gains a dimension for each country and topic a post has together
-- ('ct:KZ|terrorism': the posts mentioning KZ and tagged terrorism), so the counts beside a
-- country + topic view are sums of monthly rows like a single country's, exact, where a page
-- sampled the newest 500 of its matches on every request (30 ms of the server's time on a million
-- posts). A month gets its new rows when it is rebuilt: every month is marked changed, and until
-- the refresh has rebuilt them pages count as they do after a change of region definitions.
INSERT INTO facet_dirty_months SELECT DISTINCT month FROM facet_months WHERE month <> '-infinity';
