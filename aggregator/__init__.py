"""Regional security news aggregator.

Data flow: fetch -> parse -> normalize -> tag -> store -> serve (see docs/ARCHITECTURE.md).
"""

__version__ = "0.1.0"
