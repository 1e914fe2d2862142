"""Huge feeds, generated, and the memory of the processes that poll them: shared by the tests of
one enormous poll and by its benchmark (bench/bench_big_feed.py).

    body = rss_feed(100_000)                   # ~16 MB of RSS, one minute between entries
    with ProcessTreePeaks(proc.pid) as peaks:  # samples RSS every 20 ms from a thread
        proc.wait()
    peaks.main_mb, peaks.children_mb           # the process itself; its largest descendant
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import psutil

NEWEST = datetime(2026, 1, 1, tzinfo=UTC)
HOST = "big.example"


def entry_url(n: int) -> str:
    return f"http://{HOST}/{n}"


def rss_feed(entries: int, *, shuffled: bool = False) -> bytes:
    """An RSS feed whose entry n links to entry_url(n) and was published n minutes before NEWEST.
    Entries come newest first, as feeds list them; `shuffled` puts them in a random (seeded)
    order, so that "the newest" and "the first in the document" differ."""
    order = list(range(entries))
    if shuffled:
        random.Random(entries).shuffle(order)
    parts = [b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Big</title>'
             b"<link>http://big.example/</link><description>Many entries</description>\n"]
    for n in order:
        date = (NEWEST - timedelta(minutes=n)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        parts.append(f"<item><title>Item {n}</title><link>{entry_url(n)}</link><pubDate>{date}</pubDate>"
                     f"<description>Text {n}</description></item>\n".encode())
    parts.append(b"</channel></rss>\n")
    return b"".join(parts)


class ProcessTreePeaks:
    """Peak resident memory of a process and of each of its descendants (a parse pool), sampled
    from a thread of the observing process, so the observed ones run undisturbed."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.main = 0
        self.by_child: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    @property
    def main_mb(self) -> float:
        return self.main / 1e6

    @property
    def children_mb(self) -> float:
        """The largest peak of any one descendant."""
        return max(self.by_child.values(), default=0) / 1e6

    def _sample(self) -> None:
        try:
            self.main = max(self.main, self.root.memory_info().rss)
            children = self.root.children(recursive=True)
        except psutil.Error:  # the process ended
            return
        for child in children:
            try:
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            self.by_child[child.pid] = max(self.by_child.get(child.pid, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> ProcessTreePeaks:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
