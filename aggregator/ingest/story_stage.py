"""Clustering at ingest: each new post joins a story or starts one, in the poll's own transaction.

The decision is the pure rule of stories/cluster.py, taken in memory: each worker keeps the posts of
the window in a `StoryIndex` (`StoryWindow`), loaded once when it first clusters, then brought up to
date at each turn from the rows other workers clustered since its last one (under the clustering
lock, which orders every turn, so every worker replays the same sequence and decides alike). A
turn then writes its outcome in a few set-based statements: new stories, merges when a post bridges
two stories (the older survives, the other redirects), and each post's row of post_story_keys: its
story (the only place a post's story is kept, so the post itself is written once) and what the
next worker replays (date, place in the order, features, stories merged).
`aggregator recluster` replays stored posts through the same index, so it lands where ingest did.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from aggregator.config import Settings
from aggregator.db import stories as stories_db
from aggregator.stories.cluster import Decision, Params, StoryIndex
from aggregator.stories.features import PostFeatures, extract, from_json, to_json
from aggregator.tagging.records import Evidence, Tag

# A turn costs ~0.15 ms a post in memory and writes, plus its features (~0.05-1 ms): a feed's first
# poll of 100,000 archive entries would still hold every worker's clustering for ~15 s. A poll
# clusters its newest posts up to this many; the rest keep no story until `aggregator recluster`
# groups them (readers treat a post without a story as its own).
MAX_CLUSTERED_PER_POLL = 10_000
ARCHIVE_AGE = timedelta(days=2)  # a post dated this long before it arrived is from an archive, not news


def is_quiet(published: datetime | None, arrived: datetime, *, first_poll: bool, backfill: bool) -> bool:
    """Whether a post must not make its story count toward a surge: it came from a backfill or a
    source's first poll, or is dated well before it arrived (a feed republishing its archive)."""
    return backfill or first_poll or (published is not None and published < arrived - ARCHIVE_AGE)


def params_from(settings: Settings) -> Params:
    return Params(window=timedelta(hours=settings.story_window_hours), threshold=settings.story_threshold)


@dataclass(frozen=True, slots=True)
class ToCluster:
    post_id: int
    title: str
    at: datetime  # the post's date (sort_at)
    features: PostFeatures
    quiet: bool = False  # backfill, first poll, archive: joins stories, counts toward no surge


def features_of(title: str, text: str, tags: Sequence[Tag]) -> PostFeatures:
    return extract(title, text, list(tags))


def tags_from_rows(rows: Sequence[tuple[str, str, list[str]]]) -> list[Tag]:
    """Tags as clustering needs them (kind, code, evidence phrases) from stored tag rows."""
    return [Tag(kind, code, None, 1.0, tuple(Evidence("", 0, 0, p, "", 0.0) for p in phrases))
            for kind, code, phrases in rows]


PLACEHOLDER = 2**62  # story ids of a turn before the database gives them theirs (after every real id)


class StoryWindow:
    """A worker's in-memory window of clustered posts, kept equal to what the database says.

    Only used under the clustering lock (one turn at a time, across threads and processes). A
    turn's own assignments are recorded at once (its later posts must see them) and checked at the
    next turn: if they are not in the database (the poll's transaction rolled back), or recluster
    rewrote assignments (`epoch`), or the rows are gone (a truncated table), the window is loaded
    again from the database."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.lock = threading.Lock()
        self.index: StoryIndex | None = None
        self.seq = 0  # the last place in the clustering order replayed
        self.epoch = -1
        self.pending: dict[int, int] = {}  # place in the order -> post, of our last turn (unconfirmed)
        self.loads = 0  # how many times the window was loaded (tests and benchmarks read it)

    def load(self, conn: psycopg.Connection) -> None:
        """The window as stored: every clustered post no older than the window before the newest."""
        index = StoryIndex(self.params)
        self.epoch = stories_db.epoch(conn)
        self.seq = stories_db.last_seq(conn)
        newest = stories_db.newest_at(conn)
        if newest is not None:
            for row in stories_db.window_rows(conn, newest - self.params.window):
                index.record(row.post_id, row.story_id, from_json(row.features or {}), row.at,
                             story_first=row.story_first)
        self.index = index
        self.pending = {}
        self.loads += 1

    def sync(self, conn: psycopg.Connection, start: stories_db.TurnStart | None = None) -> StoryIndex:
        """Replay what was clustered since our last turn (or load the window); the index, current.
        `start` is what the turn read on taking the lock (read here when not given)."""
        if start is None:
            start = self._turn_start(conn, 0)
        if self.index is None or start.epoch != self.epoch:
            self.load(conn)
            assert self.index is not None
            return self.index
        rows = start.rows
        confirmed = {r.seq: r.post_id for r in rows if r.seq in self.pending}
        if confirmed != self.pending or (not rows and stories_db.last_seq(conn) < self.seq):
            self.load(conn)
            return self.index
        for row in rows:
            if row.seq in self.pending:
                self.index.record(row.post_id, row.story_id, None, row.at, row.merged)  # recorded already
            else:
                self.index.record(row.post_id, row.story_id, from_json(row.features or {}), row.at, row.merged)
        if rows:
            self.seq = rows[-1].seq
        self.pending = {}
        return self.index

    def _turn_start(self, conn: psycopg.Connection, count: int) -> stories_db.TurnStart:
        return stories_db.turn_start(conn, None if self.index is None else self.seq, self.epoch,
                                     list(self.pending), count)

    def cluster(self, conn: psycopg.Connection, posts: Sequence[ToCluster]) -> list[int]:
        """Put posts into their stories in order, in the caller's transaction; the story id of each."""
        if not posts:
            return []
        stories_db.lock_clustering(conn)
        with self.lock:
            try:
                return self._cluster(conn, posts)
            except BaseException:
                self.index = None  # what it holds may be half a turn: load again
                raise

    def _cluster(self, conn: psycopg.Connection, posts: Sequence[ToCluster]) -> list[int]:
        # Three round trips under the lock (this read, the writes, the commit): each is a wait for
        # every other worker.
        start = self._turn_start(conn, len(posts))
        index = self.sync(conn, start)
        seqs = start.seqs
        started: list[ToCluster] = []  # posts that start a story, in order
        merged_into: dict[int, int] = {}  # story merged -> the story it merged into (this turn)
        decided: list[tuple[int, Decision]] = []
        for post in posts:
            story, decision = index.add(post.post_id, post.features, post.at, new_story=PLACEHOLDER + len(started))
            if decision.story is None:
                started.append(post)
            merged_into.update((other, story) for other in decision.merge)
            decided.append((story, decision))
        ids = start.story_ids[:len(started)]  # ascending: an older story keeps the smaller id
        for number, story_id in enumerate(ids):
            index.move(PLACEHOLDER + number, story_id)

        def real(story: int) -> int:
            return ids[story - PLACEHOLDER] if story >= PLACEHOLDER else story

        def final(story: int) -> int:
            story = real(story)
            while story in merges:
                story = merges[story]
            return story

        merges = {real(other): real(story) for other, story in merged_into.items()}
        assigned = [final(story) for story, _ in decided]
        # A story begun in this turn that no other post joined (most, in a busy window) was inserted
        # as counted; every other story the turn touched is recounted.
        joined = Counter(assigned)
        survivors = {final(other) for other in merges}
        alone = {story for story in ids if joined[story] == 1 and story not in survivors}
        with conn.pipeline():  # the turn's writes, sent together
            stories_db.insert_stories(conn, [stories_db.NewStory(i, p.title, p.post_id, p.at)
                                             for i, p in zip(ids, started, strict=True)])
            stories_db.merge_many(conn, {other: final(other) for other in merges})
            stories_db.insert_keys(conn, [
                stories_db.NewKeys(p.post_id, story, p.at, seq, to_json(p.features), p.quiet,
                                   [real(m) for m in d.merge])
                for p, (_, d), story, seq in zip(posts, decided, assigned, seqs, strict=True)])
            stories_db.refresh(conn, sorted(set(assigned) - alone))
        self.pending = dict(zip(seqs, (p.post_id for p in posts), strict=True))
        return assigned
