"""Rendered feeds kept in memory until a post changes, and HTTP validators for them.

Thousands of readers poll the same few hundred filters every few minutes, while posts change a few
times a minute at most. Each web process therefore keeps the feeds it rendered (body and
validators) and LISTENs for the change signal of migration 0004; the first notification after a
commit drops them all. Between changes a poll, conditional or not, costs a dictionary look-up.

Why this is exact: a notification is delivered after its transaction commits. An entry remembers
the cache generation read *before* its database snapshot was taken, so a change that committed
after that snapshot has bumped the generation by the time (or soon after) anyone reads the entry.
Whenever the listener is not connected nothing is served from memory, and every request reads the
database: slower, never stale.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

import psycopg
from isal import igzip

from aggregator.db import feed_posts as feed_db

log = logging.getLogger(__name__)
GZIP_SUFFIX = "-gzip"


@dataclass(slots=True)
class Rendered:
    """One feed document and its validators. `body` is None when only the validators were read
    (a conditional request that matched needs no body)."""

    etag: str  # strong, quoted, of the identity representation
    last_modified: datetime | None
    media_type: str
    body: bytes | None = None
    _gzipped: bytes | None = None
    gzip_level: int = 3  # ISA-L's 0-3; pages, rendered once per request when not kept, take 1

    def gzipped(self) -> bytes:
        """Compressed once per rendering, not once per response (mtime 0: the same bytes every time).

        By ISA-L, whose output is standard gzip: four to seven times faster than zlib on pages and
        feeds (docs/PERFORMANCE.md, web reader), which counts where every request renders."""
        if self._gzipped is None:
            self._gzipped = igzip.compress(self.body or b"", compresslevel=self.gzip_level, mtime=0)
        return self._gzipped

    def headers(self, *, gzip_variant: bool, max_age: int) -> dict[str, str]:
        headers = {"ETag": variant_etag(self.etag, gzip_variant), "Cache-Control": f"public, max-age={max_age}",
                   "Vary": "Accept-Encoding"}
        if self.last_modified is not None:
            headers["Last-Modified"] = format_datetime(self.last_modified, usegmt=True)
        return headers


def variant_etag(etag: str, gzip_variant: bool) -> str:
    """The gzip-coded body is another representation, so it gets its own strong ETag (Apache's scheme)."""
    return f'{etag[:-1]}{GZIP_SUFFIX}"' if gzip_variant else etag


def _opaque(tag: str) -> str:
    tag = tag.strip().removeprefix("W/")
    return tag[:-1].removesuffix(GZIP_SUFFIX) + '"' if tag.endswith('"') else tag


def not_modified(headers: Mapping[str, str], etag: str, last_modified: datetime | None) -> bool:
    """RFC 9110 §13.2.2 for GET: If-None-Match decides when present (weak comparison, either coding);
    otherwise If-Modified-Since, at the one-second resolution of HTTP dates."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        wanted = _opaque(etag)
        return any(_opaque(candidate) == wanted for candidate in if_none_match.split(","))
    since_text = headers.get("if-modified-since")
    if not since_text or last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(since_text)
    except (TypeError, ValueError, IndexError):
        return False  # an unparsable date is ignored, as the RFC says
    if since.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= since


class FeedCache:
    """Rendered feeds by key, least recently used dropped first, all dropped on any change."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[int, Rendered]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self._live = False

    def token(self) -> int | None:
        """Read before taking the snapshot a rendering comes from; None: do not cache."""
        with self._lock:
            return self._generation if self._live and self.max_entries > 0 else None

    def get(self, key: Hashable) -> Rendered | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or not self._live or found[0] != self._generation:
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: Hashable, token: int | None, rendered: Rendered) -> None:
        with self._lock:
            if token is None or token != self._generation:
                return
            self._entries[key] = (token, rendered)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def changed(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def set_live(self, live: bool) -> None:
        with self._lock:
            self._generation += 1
            self._live = live
            self._entries.clear()


class ChangeListener:
    """A thread holding the LISTEN connection; reconnects after a failure, the cache off meanwhile."""

    def __init__(self, url: str, cache: FeedCache, *, retry_seconds: float = 5.0) -> None:
        self.url = url
        self.cache = cache
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="feeds-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.cache.set_live(False)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                feed_db.listen_for_changes(self.url, self.cache.changed, lambda: self.cache.set_live(True),
                                           self._stop, poll_seconds=0.5)
            except (psycopg.Error, OSError) as exc:
                log.warning("feeds.listener_failed error=%s", str(exc).strip().splitlines()[0] if str(exc) else exc)
            finally:
                self.cache.set_live(False)
            self._stop.wait(self.retry_seconds)
