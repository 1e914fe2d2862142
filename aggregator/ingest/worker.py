"""The polling worker: claims due feeds from the database and runs them through the pipeline.

*How* one feed is updated lives in pipeline.py; *when* ticks happen lives in scheduler.py.
Several workers (threads here, processes or machines elsewhere) share one database safely:
claiming is a leased reservation taken with SKIP LOCKED.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import Source
from aggregator.ingest.pipeline import Pipeline, PollOutcome
from aggregator.logs import failures_logged

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(self, db: Database, pipeline: Pipeline, settings: Settings, *, name: str | None = None):
        self.db = db
        self.pipeline = pipeline
        self.name = name or worker_name()
        self.capacity = settings.fetch_concurrency
        self.lease_seconds = settings.lease_seconds
        self.grace_seconds = settings.shutdown_grace_seconds
        self._pool = ThreadPoolExecutor(self.capacity, thread_name_prefix="poll")
        self._lock = threading.Lock()
        # held from the closing check to the last submit, so shutdown never races a claim: a tick
        # the scheduler started just before a signal would otherwise claim after the leases were
        # released, and submit to a pool already shut down
        self._claiming = threading.Lock()
        self._in_flight: set[Future[PollOutcome]] = set()
        self._closing = False

    def tick(self) -> int:
        """Claim as many due feeds as there are free slots and start polling them; returns how many."""
        return len(self._claim_and_start(None))

    def _claim_and_start(self, limit: int | None, urls: list[str] | None = None) -> list[Future[PollOutcome]]:
        """Claim up to `limit` due feeds (None: as many as there are free slots; with `urls`, those
        feeds, due or not) and start polling them, unless closing. Under `_claiming`, so a shutdown
        never races a claim."""
        with self._claiming:
            if limit is None:
                with self._lock:
                    limit = self.capacity - len(self._in_flight)
            if limit <= 0 or self._closing:
                return []
            with self.db.connection() as conn:
                claimed = sources_db.claim_due(conn, owner=self.name, limit=limit,
                                               lease_seconds=self.lease_seconds, urls=urls)
            return [self._submit(source) for source in claimed]

    def _submit(self, source: Source) -> Future[PollOutcome]:
        future = self._pool.submit(self.pipeline.update, source, self.name)
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[PollOutcome]) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def poll_now(self, urls: Sequence[str] | None = None, *, every_feed: bool = False) -> list[PollOutcome]:
        """Poll once and wait: the named feeds (due or not), every enabled feed, or the due ones."""
        if every_feed:
            with self.db.connection() as conn:
                urls = sources_db.enabled_urls(conn)
        outcomes: list[PollOutcome] = []
        step = self.capacity * 4
        if urls:
            for i in range(0, len(urls), step):
                outcomes.extend(self._run_claimed(list(urls[i : i + step])))
            return outcomes
        while batch := self._run_claimed(None):
            outcomes.extend(batch)
        return outcomes

    def _run_claimed(self, urls: list[str] | None) -> list[PollOutcome]:
        futures = self._claim_and_start(len(urls) if urls else self.capacity * 4, urls)
        wait(futures)
        return [f.result() for f in futures]

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def shutdown(self, *, wait_seconds: float | None = None) -> None:
        """Stop claiming, let polls in flight finish for a bounded time, then free what is still held.

        (Killed instead, the worker's leases expire by themselves.)
        """
        grace = self.grace_seconds if wait_seconds is None else wait_seconds
        deadline = time.monotonic() + grace
        self._closing = True  # no new claim; one under way submits what it claimed, then lets go
        if self._claiming.acquire(timeout=grace):  # bounded: a claim stuck on the database is left
            self._claiming.release()              # to its lease, which expires (as when killed)
        with self._lock:
            pending = list(self._in_flight)
        _, unfinished = wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        # with the database gone too, the leases expire by themselves
        with failures_logged(log, "worker.release_failed", name=self.name):
            with self.db.connection() as conn:
                released = sources_db.release_all(conn, self.name)
            if unfinished or released:
                log.info("worker.abandoned name=%s polls=%d leases_released=%d", self.name, len(unfinished),
                         released)

