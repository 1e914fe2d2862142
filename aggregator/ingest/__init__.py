"""The path a post travels: fetch → parse → normalize → tag → store, one feed poll at a time."""
