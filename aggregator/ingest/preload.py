"""Imported once by the parse pool's fork server, before it forks any parse process.

What is loaded here is loaded once and shared: the language detector's model (about 40 MB of arrays
that are never written after loading) stays in pages the parse processes share with the fork server,
instead of a copy in each process. The taxonomy is not preloaded: its folder is a setting, and its
Python objects would be copied anyway as soon as reference counts touch them.
"""

from aggregator.ingest import language, tag_stage  # noqa: F401  (tag_stage: the parse path's modules)

language.load()
