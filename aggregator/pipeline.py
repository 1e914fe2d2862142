"""update_source(): one feed through fetch -> parse -> normalize -> store, in that order.

One feed's failure never touches another: every error of a poll, expected or not, ends as a
recorded outcome on its own source, in its own transaction. What was committed stays committed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import psycopg

from aggregator import schedule
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import fetch_log as fetch_log_db
from aggregator.db import posts as posts_db
from aggregator.db import sources as sources_db
from aggregator.db import tags as tags_db
from aggregator.db.sources import PollRecord, Source
from aggregator.errors import (
    AggregatorError,
    DatabaseUnavailable,
    FetchError,
    ParseError,
    SourceError,
    StorageError,
    first_line,
)
from aggregator.models import FeedContent, FetchResult, Validators
from aggregator.tag_stage import TagContext, process_body

log = logging.getLogger(__name__)


class FetcherLike(Protocol):
    def fetch(self, url: str, validators: Validators = ...) -> FetchResult: ...


ParseFn = Callable[[bytes, str, str | None, datetime, TagContext | None], FeedContent]

parse_inline: ParseFn = process_body


def _exit_with_worker(worker_pid: int) -> None:
    """In a parse process: leave when the worker that started it is gone. (Its parent is the fork
    server, which itself stays up as long as its children do, so the parent can't tell.)"""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(worker_pid, 0)
            except (ProcessLookupError, PermissionError):  # gone, or its pid reused by another user's process
                os._exit(0)

    threading.Thread(target=watch, name="worker-watch", daemon=True).start()


class ParsePool:
    """Parse and tag in other processes: both are CPU-bound, and a pathological feed then costs a
    process, not the scheduler.

    A process that dies (the kernel's OOM killer, a crash in a C extension on a hostile body) breaks
    a ProcessPoolExecutor for good: every later submit fails. So a broken pool is replaced, and the
    polls that were riding on it get one retry on the new one; a body that breaks the pool twice is
    that feed's parse error, and every other feed goes on.

    The processes are not forked from the worker: `aggregator run` has a dozen threads (web server,
    scheduler, pool), and a child forked while one of them holds a lock (the taxonomy cache's, say)
    inherits it locked and waits forever. They start from a clean server process instead, and each
    exits by itself when the process that started it is gone (a SIGKILLed worker left them behind).
    """

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.replaced = 0
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        return ProcessPoolExecutor(self.processes, mp_context=context, initializer=_exit_with_worker,
                                   initargs=(os.getpid(),))

    def __call__(self, body: bytes, url: str, content_type: str | None, now: datetime,
                 ctx: TagContext | None) -> FeedContent:
        for attempt in (1, 2):
            executor = self._executor
            try:
                return executor.submit(process_body, body, url, content_type, now, ctx).result()
            except BrokenProcessPool as exc:
                self._replace(executor)
                if attempt == 2:
                    raise ParseError(url, "the parsing process died on this feed") from exc
        raise AssertionError("unreachable")

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = self._new_executor()
                self.replaced += 1
                broken.shutdown(wait=False, cancel_futures=True)
                log.warning("parse_pool.replaced processes=%d times=%d", self.processes, self.replaced)

    def shutdown(self) -> None:
        self._executor.shutdown(cancel_futures=True)


@dataclass(slots=True)
class PollOutcome:
    source_id: int
    url: str
    outcome: str  # ok | not_modified | unchanged | error | lease_lost
    status: int | None = None
    entries: int = 0
    new_posts: int = 0
    updated_posts: int = 0
    error_kind: str | None = None
    error: str | None = None
    disabled: str | None = None
    moved_to: str | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        parts = [f"{self.outcome}", self.url]
        if self.status:
            parts.append(f"status={self.status}")
        if self.outcome == "ok":
            parts.append(f"entries={self.entries} new={self.new_posts} updated={self.updated_posts}")
        if self.error:
            parts.append(f"error={self.error_kind}: {self.error}")
        if self.moved_to:
            parts.append(f"moved_to={self.moved_to}")
        if self.disabled:
            parts.append(f"DISABLED: {self.disabled}")
        parts.append(f"{self.seconds:.2f}s")
        return " ".join(parts)


def store_tags(conn: psycopg.Connection, content: FeedContent, stored: posts_db.UpsertResult) -> None:
    """Tag rows of new and edited posts, in the caller's transaction (unchanged posts keep theirs;
    the filterable arrays were written with the posts)."""
    if content.taxonomy_version is None:
        return
    changed = set(stored.new_ids) | set(stored.updated_ids)
    tagged = [(pid, post.tags) for pid, post in zip(stored.post_ids, content.posts, strict=True) if pid in changed]
    tags_db.replace_tags(conn, tagged, content.taxonomy_version)


class LeaseLost(AggregatorError):
    """Another worker took this feed over after our lease expired; our results are discarded."""


def limits_from(settings: Settings) -> schedule.Limits:
    return schedule.Limits(
        min_interval=settings.min_interval,
        max_interval=settings.max_interval,
        default_interval=settings.default_interval,
        disable_after_failures=settings.disable_after_failures,
    )


class Pipeline:
    def __init__(
        self,
        db: Database,
        fetcher: FetcherLike,
        settings: Settings,
        *,
        parse: ParseFn = parse_inline,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.fetcher = fetcher
        self.parse = parse
        self.clock = clock
        self.rng = rng or random.Random()
        self.limits = limits_from(settings)
        self.taxonomy_dir = str(settings.taxonomy_dir) if settings.taxonomy_dir else None
        # Retrying a write while the database restarts must end well before the lease does, or
        # another worker could take the feed over and both would store it.
        self.store_retry_seconds = min(30.0, settings.lease_seconds / 2)

    def tag_context(self, source: Source) -> TagContext:
        return TagContext(self.taxonomy_dir, tuple(source.default_countries), tuple(source.default_topics))

    def update(self, source: Source, owner: str) -> PollOutcome:
        """Poll one claimed source and record the outcome. Never raises."""
        started = self.clock()
        t0 = time.monotonic()
        try:
            outcome = self._update(source, owner, started)
        except LeaseLost:
            outcome = PollOutcome(source.id, source.url, "lease_lost")
        except Exception as exc:  # the last line of defence: record, never crash the scheduler
            if not isinstance(exc, AggregatorError):
                log.exception("poll.internal_error url=%s", source.url)
            err = SourceError(source.url, f"{type(exc).__name__}: {exc}", kind="internal")
            if isinstance(exc, StorageError):
                err = SourceError(source.url, str(exc), kind="storage")
            outcome = self._record_error(source, owner, started, exc, err)
        outcome.seconds = time.monotonic() - t0
        log.info(
            "poll.done url=%s outcome=%s status=%s entries=%d new=%d updated=%d error_kind=%s secs=%.2f",
            source.url, outcome.outcome, outcome.status, outcome.entries, outcome.new_posts,
            outcome.updated_posts, outcome.error_kind, outcome.seconds,
        )
        return outcome

    def _record_error(self, source: Source, owner: str, started: datetime, cause: Exception,
                      err: SourceError) -> PollOutcome:
        """Record an unexpected failure on its source. When the database itself is what failed, the
        failure cannot be recorded: the lease expires and frees the feed instead."""
        unrecorded = cause
        if not isinstance(cause, DatabaseUnavailable):  # that was retried already; recording would fail alike
            try:
                return self._record_failure(source, owner, started, err)
            except Exception as exc:
                if not isinstance(exc, StorageError):
                    log.exception("poll.record_failed url=%s", source.url)
                unrecorded = exc
        log.warning("poll.unrecorded url=%s error=%s: polled again when its lease expires", source.url,
                    first_line(unrecorded))
        return PollOutcome(source.id, source.url, "error", error_kind=err.kind, error=err.message)

    def _update(self, source: Source, owner: str, started: datetime) -> PollOutcome:
        validators = Validators(source.etag, source.last_modified, source.body_hash)
        try:
            result = self.fetcher.fetch(source.url, validators)
        except FetchError as exc:
            return self._record_failure(source, owner, started, exc)
        if result.unchanged:
            return self._record_unchanged(source, owner, started, result)
        try:
            content = self.parse(result.body, result.final_url, result.content_type, started,
                                 self.tag_context(source))
        except ParseError as exc:
            return self._record_failure(source, owner, started, exc, status=result.status)
        return self._store(source, owner, started, result, content)

    def _store(
        self, source: Source, owner: str, started: datetime, result: FetchResult, content: FeedContent
    ) -> PollOutcome:
        published = [p.published_at for p in content.posts if p.published_at]
        interval = schedule.publishing_interval(published, started, self.limits) or source.poll_interval
        server_min = schedule.server_min_interval(content.meta.ttl_minutes, result.max_age, self.limits)
        decision = schedule.after_success(
            started, interval=interval, server_min=server_min, limits=self.limits, rng=self.rng,
            retry_after=result.retry_after,
        )

        kept_validators: dict[str, str | None] = {"etag": None, "last_modified": None, "body_hash": None}
        if content.complete:  # a cut body is fetched whole next time, not answered 304
            kept_validators = {"etag": result.validators.etag, "last_modified": result.validators.last_modified,
                               "body_hash": result.body_hash}

        def write() -> PollOutcome:
            with self.db.connection() as conn:
                stored = posts_db.upsert_for_source(conn, source.id, content.posts, started, content.taxonomy_version)
                store_tags(conn, content, stored)
                outcome = PollOutcome(
                    source.id, source.url, "ok", status=result.status, entries=content.entries_found,
                    new_posts=stored.new, updated_posts=stored.updated, moved_to=result.permanent_url,
                    warnings=content.warnings,
                )
                return self._record(
                    conn, source, owner, started, decision, outcome, url=result.permanent_url,
                    title=content.meta.title, site_url=content.meta.site_url, **kept_validators,
                )

        return self._retrying(source, write)

    def _retrying(self, source: Source, write: Callable[[], PollOutcome]) -> PollOutcome:
        """Run a poll's write transaction, again while the database is unreachable (a restart, a
        failover): the feed was fetched and parsed already, and each attempt is all-or-nothing and
        idempotent, so retrying loses nothing and stores nothing twice."""
        deadline = time.monotonic() + self.store_retry_seconds
        delay = 0.5
        while True:
            try:
                return write()
            except DatabaseUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("poll.store_retry url=%s in=%.1fs error=%s", source.url, delay,
                            first_line(exc))
                time.sleep(delay)
                delay = min(delay * 2, 8.0)

    def _record_unchanged(
        self, source: Source, owner: str, started: datetime, result: FetchResult
    ) -> PollOutcome:
        kind = "not_modified" if result.status == 304 else "unchanged"
        server_min = source.server_min_interval
        if result.max_age is not None:  # a 304 may renew the cache lifetime; else keep what the body said
            server_min = schedule.server_min_interval(None, result.max_age, self.limits)
        decision = schedule.after_success(
            started, interval=source.poll_interval, server_min=server_min, limits=self.limits,
            rng=self.rng, retry_after=result.retry_after,
        )
        outcome = PollOutcome(source.id, source.url, kind, status=result.status, moved_to=result.permanent_url)

        def write() -> PollOutcome:
            with self.db.connection() as conn:
                return self._record(
                    conn, source, owner, started, decision, outcome, url=result.permanent_url,
                    etag=result.validators.etag, last_modified=result.validators.last_modified,
                    body_hash=result.body_hash,
                )

        return self._retrying(source, write)

    def _record_failure(
        self, source: Source, owner: str, started: datetime, exc: SourceError, *, status: int | None = None
    ) -> PollOutcome:
        status = getattr(exc, "status", None) or status
        retry_after = getattr(exc, "retry_after", None)
        decision = schedule.after_failure(
            started, interval=source.poll_interval, server_min=source.server_min_interval,
            failures=source.consecutive_failures + 1,
            permanent_failures=source.permanent_failures + (0 if exc.temporary else 1),
            temporary=exc.temporary, reason=str(exc), limits=self.limits, rng=self.rng,
            retry_after=retry_after,
        )
        outcome = PollOutcome(
            source.id, source.url, "error", status=status, error_kind=exc.kind, error=exc.message,
            disabled=decision.disable_reason,
        )

        def write() -> PollOutcome:
            with self.db.connection() as conn:
                return self._record(conn, source, owner, started, decision, outcome, error=exc.message[:2000],
                                    error_kind=exc.kind, permanent_error=not exc.temporary)

        self._retrying(source, write)
        if decision.disable_reason:
            log.warning("source.disabled url=%s reason=%s", source.url, decision.disable_reason)
        return outcome

    def _record(
        self,
        conn: psycopg.Connection,
        source: Source,
        owner: str,
        started: datetime,
        decision: schedule.Decision,
        outcome: PollOutcome,
        **fields: object,
    ) -> PollOutcome:
        """Write a poll's outcome on its source (releasing the lease) and in the fetch log, in the
        caller's transaction; LeaseLost if another worker took the feed meanwhile."""
        record = PollRecord(
            source_id=source.id, owner=owner, polled_at=started, next_poll_at=decision.next_poll_at,
            poll_interval=decision.poll_interval, server_min_interval=decision.server_min_interval,
            ok=outcome.outcome != "error", new_posts=outcome.new_posts, disable_reason=decision.disable_reason,
            **fields,  # type: ignore[arg-type]
        )
        if not sources_db.record_poll(conn, record):
            raise LeaseLost(source.url)
        fetch_log_db.add(
            conn, source_id=source.id, worker=owner, due_at=source.next_poll_at, started_at=started,
            finished_at=self.clock(), outcome=outcome.outcome, status=outcome.status, entries=outcome.entries,
            new_posts=outcome.new_posts, updated_posts=outcome.updated_posts, error_kind=outcome.error_kind,
            error=outcome.error[:2000] if outcome.error else None,
        )
        return outcome
