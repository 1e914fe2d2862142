-- What every list of posts reads stays in the post's row; only its body (html, text) is moved out.
--
-- PostgreSQL keeps a row under about 2 KB by compressing its largest values and moving them to the
-- table's TOAST storage, largest first. The search vector compresses worst, so it was usually the
-- first to go: a search that walks the date index and tests each post's vector then fetched every
-- vector through the TOAST index, about five buffer reads a post instead of one (2.2 ms to find the
-- 30 newest posts with a common word among a million, 0.4-0.5 ms with the vector in the row).
-- MAIN keeps a value in the row, compressed, unless the row would not fit a page at all; the body
-- stays EXTENDED, so it is what moves out. Small values are MAIN too: otherwise a row still too big
-- after the body moved out would have its tag arrays moved out before its vector, and every
-- country or topic filter would pay that fetch instead.
-- Rows written before this keep their layout until they are next written.
ALTER TABLE posts
    ALTER COLUMN search SET STORAGE MAIN,
    ALTER COLUMN dedup_key SET STORAGE MAIN,
    ALTER COLUMN url SET STORAGE MAIN,
    ALTER COLUMN title SET STORAGE MAIN,
    ALTER COLUMN author SET STORAGE MAIN,
    ALTER COLUMN categories SET STORAGE MAIN,
    ALTER COLUMN summary SET STORAGE MAIN,
    ALTER COLUMN lang SET STORAGE MAIN,
    ALTER COLUMN content_hash SET STORAGE MAIN,
    ALTER COLUMN countries SET STORAGE MAIN,
    ALTER COLUMN primary_countries SET STORAGE MAIN,
    ALTER COLUMN topics SET STORAGE MAIN,
    ALTER COLUMN taxonomy_version SET STORAGE MAIN,
    ALTER COLUMN places SET STORAGE MAIN;
