"""update_source(): one feed through fetch -> parse -> normalize -> store, in that order.

One feed's failure never touches another: every error of a poll, expected or not, ends as a
recorded outcome on its own source, in its own transaction. What was committed stays committed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import psycopg

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
    ErrorKind,
    FetchError,
    LeaseLost,
    ParseError,
    SourceError,
    StorageError,
    first_line,
)
from aggregator.ingest import next_poll, normalize, story_stage
from aggregator.ingest.models import FeedContent, FetchResult, Validators
from aggregator.ingest.parse_pool import ParseFn, parse_inline
from aggregator.ingest.tag_stage import TagContext

log = logging.getLogger(__name__)


class FetcherLike(Protocol):
    def fetch(self, url: str, validators: Validators = ...) -> FetchResult: ...


@dataclass(slots=True)
class PollOutcome:
    source_id: int
    url: str
    outcome: str  # ok | not_modified | unchanged | error | lease_lost
    status: int | None = None
    entries: int = 0
    new_posts: int = 0
    updated_posts: int = 0
    error_kind: str | None = None  # the stored code of the failure's ErrorKind (SourceError.code)
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


def cluster_new(conn: psycopg.Connection, content: FeedContent, stored: posts_db.UpsertResult, started: datetime,
                window: story_stage.StoryWindow | None, *, first_poll: bool = False, backfill: bool = False) -> None:
    """New posts join their stories in the poll's transaction (edits keep the story they are in).
    Posts of a first poll or a backfill are marked quiet: they make no story count toward a surge.
    Without a window (clustering off) they keep no story."""
    if window is None:
        return
    new = set(stored.new_ids)
    chosen = [(pid, post) for pid, post in zip(stored.post_ids, content.posts, strict=True) if pid in new]
    if len(chosen) > story_stage.MAX_CLUSTERED_PER_POLL:
        newest = sorted(chosen, key=lambda pp: pp[1].published_at or started, reverse=True)
        keep = {pid for pid, _ in newest[:story_stage.MAX_CLUSTERED_PER_POLL]}
        log.warning("stories.deferred posts=%d clustered=%d (aggregator recluster groups the rest)",
                    len(chosen) - len(keep), len(keep))
        chosen = [(pid, post) for pid, post in chosen if pid in keep]
    window.cluster(conn, [
        story_stage.ToCluster(pid, post.title, post.published_at or started,
                              story_stage.features_of(post.title, post.text, post.tags)
                              if post.story_features is None else post.story_features,
                              story_stage.is_quiet(post.published_at, started, first_poll=first_poll,
                                                   backfill=backfill))
        for pid, post in chosen])


def limits_from(settings: Settings) -> next_poll.Limits:
    return next_poll.Limits(
        min_interval=settings.min_interval,
        max_interval=settings.max_interval,
        default_interval=settings.default_interval,
        disable_after_failures=settings.disable_after_failures,
        min_retry=settings.min_retry_seconds,
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
        self.story_params = story_stage.params_from(settings)
        # this worker's window, in memory (None: clustering is off)
        self.stories = story_stage.StoryWindow(self.story_params) if settings.stories else None
        self.max_entries = settings.max_entries_per_poll

    def tag_context(self, source: Source) -> TagContext:
        return TagContext(self.taxonomy_dir, tuple(source.default_countries), tuple(source.default_topics),
                          story_features=self.stories is not None)

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
            err = SourceError(source.url, f"{type(exc).__name__}: {exc}", kind=ErrorKind.INTERNAL)
            if isinstance(exc, StorageError):
                err = SourceError(source.url, str(exc), kind=ErrorKind.STORAGE)
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
        return PollOutcome(source.id, source.url, "error", error_kind=err.code, error=err.message)

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

    def _within_limits(self, source: Source, content: FeedContent) -> FeedContent:
        """What one poll may store: the newest MAX_ENTRIES_PER_POLL posts, with their fields cut to
        size. What was not stored in full becomes a warning of the poll, recorded on its source: not
        an error, so it never counts toward disabling the feed."""
        posts, left_out = normalize.newest(content.posts, self.max_entries)
        warnings = list(content.warnings)
        if left_out:
            warnings.append(f"stored the newest {len(posts):,} of {len(content.posts):,} entries "
                            f"(AGGREGATOR_MAX_ENTRIES_PER_POLL): {left_out:,} older ones were left out")
            log.warning("poll.entries_capped url=%s kept=%d left_out=%d", source.url, len(posts), left_out)
        if cut := normalize.cut_warning(posts):
            warnings.append(cut)
        return replace(content, posts=posts, warnings=tuple(warnings))

    def _store(
        self, source: Source, owner: str, started: datetime, result: FetchResult, content: FeedContent
    ) -> PollOutcome:
        content = self._within_limits(source, content)
        published = [p.published_at for p in content.posts if p.published_at]
        interval = next_poll.publishing_interval(published, started, self.limits) or source.poll_interval
        server_min = next_poll.server_min_interval(content.meta.ttl_minutes, result.max_age, self.limits)
        decision = next_poll.after_success(
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
                self._record(
                    conn, source, owner, started, decision, outcome, url=result.permanent_url,
                    title=content.meta.title, site_url=content.meta.site_url, warnings=content.warnings,
                    **kept_validators,
                )
                # Last: the clustering lock it takes orders every worker's turns and is held to the
                # commit, so nothing else of the transaction may wait inside it.
                cluster_new(conn, content, stored, started, self.stories,
                            first_poll=source.last_success_at is None)
                return outcome

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
            server_min = next_poll.server_min_interval(None, result.max_age, self.limits)
        decision = next_poll.after_success(
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
        status = exc.status or status
        retry_after = getattr(exc, "retry_after", None)
        decision = next_poll.after_failure(
            started, interval=source.poll_interval, server_min=source.server_min_interval,
            failures=source.consecutive_failures + 1,
            permanent_failures=source.permanent_failures + (1 if exc.disables else 0),
            kind=exc.kind, reason=str(exc), limits=self.limits, rng=self.rng, retry_after=retry_after,
        )
        outcome = PollOutcome(
            source.id, source.url, "error", status=status, error_kind=exc.code, error=exc.message,
            disabled=decision.disable_reason,
        )

        def write() -> PollOutcome:
            with self.db.connection() as conn:
                return self._record(conn, source, owner, started, decision, outcome, failure=exc)

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
        decision: next_poll.Decision,
        outcome: PollOutcome,
        *,
        failure: SourceError | None = None,
        **fields: object,
    ) -> PollOutcome:
        """Write a poll's outcome on its source (releasing the lease) and in the fetch log, in the
        caller's transaction; LeaseLost if another worker took the feed meanwhile."""
        if failure is not None:
            fields |= {"error": failure.message[:2000], "error_kind": failure.code, "permanent_error": failure.disables}
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
            new_posts=outcome.new_posts, updated_posts=outcome.updated_posts, failure=failure,
        )
        return outcome
