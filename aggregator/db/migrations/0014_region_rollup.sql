-- Regions in the facet rollup: a facet key in every dimension ('r:north-caucasus': how many of the
-- dimension's posts are the region's: about any of its countries, or naming one of its places), a
-- dimension of its posts per day ('r:central-asia', facets 'd:…') and a trend split
-- ('xr:north-caucasus': posts per day and member place, or member country). The reader's region
-- facets and the trend charts of region pages then read monthly rows, never the posts.
--
-- Which posts a region has is taxonomy data (regions.yaml), not a property of a post, so the
-- definitions the rollup was built with are kept here: the web server writes the taxonomy's into
-- this table when it starts (aggregator.db.facets.sync_regions) and, when they changed, marks every
-- rolled-up month as changed, so the next refresh rebuilds them; until then those months are
-- counted live, with the same table, so answers stay exact. Empty until a web server has started.
CREATE TABLE facet_regions (
    code      text PRIMARY KEY,
    countries text[] NOT NULL,  -- a region of whole countries: a post about any of them is the region's
    places    text[] NOT NULL   -- non-empty: a region that is part of a country: a post naming one of these
);
