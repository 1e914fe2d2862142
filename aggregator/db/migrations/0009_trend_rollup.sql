-- The facet rollup now also holds the web reader's trend series (dimensions 'xc:' and 'xt:', see
-- aggregator.db.facets). Months rolled up before this version lack them: marking every month that
-- has posts as changed makes the next refresh rebuild them, and until then readers count those
-- months live, so trend answers are exact from the start.
INSERT INTO facet_dirty_months SELECT DISTINCT facet_month(sort_at) FROM posts;
