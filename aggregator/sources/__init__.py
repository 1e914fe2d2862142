"""Sources in: the feeds file, OPML, and the one way a source is validated and added."""
