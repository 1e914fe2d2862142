"""`aggregator recluster --since DATE`: cluster stored posts again, landing where ingest did.

Posts first seen since DATE are replayed through one in-memory `StoryIndex` in the order ingest
clustered them (`story_seq`), with the features ingest stored, beside the posts of the window they
were compared with (kept where they are): the same sequence every worker replayed, so the same
decisions, the same groups and ids (a story is re-made with the id it had, keyed by the post that
started it). Posts stored before clustering existed are clustered after them, by id, from their
stored tags.

The replay reads a snapshot without the clustering lock, so workers keep ingesting meanwhile; then,
under the lock, it replays what they clustered since, writes everything in a few set-based
statements (only what changed) and bumps the clustering epoch so every worker reloads its window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from aggregator.db import Database
from aggregator.db import stories as stories_db
from aggregator.ingest import story_stage
from aggregator.stories.cluster import Params, StoryIndex
from aggregator.stories.features import PostFeatures, from_json, to_json

PLACEHOLDER = story_stage.PLACEHOLDER


@dataclass(slots=True)
class _Replay:
    """The in-memory replay: decisions of the replayed posts, stories started and merged."""

    index: StoryIndex
    since: datetime
    seq: int = 0  # the last place in the clustering order replayed
    story_of: dict[int, int] = field(default_factory=dict)  # replayed post -> story (placeholder or id)
    merged_by: dict[int, list[int]] = field(default_factory=dict)  # replayed post -> stories it merged
    merges: dict[int, int] = field(default_factory=dict)  # story -> the story it merged into
    started: list[tuple[int, datetime]] = field(default_factory=list)  # (post, date) of each story begun
    before: set[int] = field(default_factory=set)  # stories the replayed posts were in before
    unclustered: list[tuple[stories_db.PostToCluster, PostFeatures]] = field(default_factory=list)

    def decide(self, post: int, features: PostFeatures, at: datetime) -> None:
        story, decision = self.index.add(post, features, at, new_story=PLACEHOLDER + len(self.started))
        if decision.story is None:
            self.started.append((post, at))
        self.story_of[post] = story
        self.merged_by[post] = list(decision.merge)
        self.merges.update((other, story) for other in decision.merge)

    def replay(self, rows: Iterator[stories_db.ReplayRow], progress: Callable[[int], None]) -> None:
        for row in rows:
            if row.replay:
                if row.story_id is not None:
                    self.before.add(row.story_id)
                self.decide(row.post_id, from_json(row.features), row.at)
                if len(self.story_of) % 10_000 == 0:
                    progress(len(self.story_of))
            elif row.story_id is not None:
                self.index.record(row.post_id, row.story_id, from_json(row.features), row.at)
            self.seq = row.seq


def recluster(db: Database, since: datetime, params: Params, *,
              progress: Callable[[int], None] = lambda done: None) -> int:
    """Recluster posts first seen since `since`; returns how many were clustered."""
    replay = _Replay(StoryIndex(params), since)
    with db.connection() as conn:  # a snapshot: the stored order and features, read without the lock
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        window_start = (stories_db.replay_start(conn, since) or since) - params.window
        replay.replay(stories_db.replay_rows(conn, since, window_start, 0), progress)
        waiting = stories_db.unclustered(conn, since, story_stage.ARCHIVE_AGE)
        tags = {}
        for i in range(0, len(waiting), 5000):
            tags.update(stories_db.stored_tags(conn, [p.id for p in waiting[i:i + 5000]]))
        replay.unclustered = [(p, story_stage.features_of(p.title, p.text,
                                                          story_stage.tags_from_rows(tags.get(p.id, []))))
                              for p in waiting]
    with db.connection() as conn:
        stories_db.lock_clustering(conn)
        # What workers clustered while the snapshot was replayed, then the never-clustered posts.
        replay.replay(stories_db.replay_rows(conn, since, window_start, replay.seq), progress)
        seqs = stories_db.next_ids(conn, stories_db.CLUSTER_ORDER, len(replay.unclustered))
        for post, features in replay.unclustered:
            replay.decide(post.id, features, post.at)
        _write(conn, replay, seqs)
        stories_db.bump_epoch(conn)
    progress(len(replay.story_of))
    return len(replay.story_of)


def _write(conn: psycopg.Connection, replay: _Replay, seqs: list[int]) -> None:
    ids = stories_db.upsert_stories(conn, [p for p, _ in replay.started], [at for _, at in replay.started])
    placeholders = [ids[post] for post, _ in replay.started]

    def real(story: int) -> int:
        return placeholders[story - PLACEHOLDER] if story >= PLACEHOLDER else story

    merges = {real(o): real(s) for o, s in replay.merges.items()}

    def final(story: int) -> int:
        story = real(story)
        while story in merges:
            story = merges[story]
        return story

    stories_db.merge_many(conn, {other: final(other) for other in merges})
    rows = [(post, final(story), [real(m) for m in replay.merged_by[post]]) for post, story in replay.story_of.items()]
    fresh = {post.id for post, _ in replay.unclustered}
    stories_db.reassign(conn, [r for r in rows if r[0] not in fresh])
    stories_db.insert_keys(conn, [
        stories_db.NewKeys(post.id, final(replay.story_of[post.id]), post.at, seq, to_json(features), post.quiet,
                           [real(m) for m in replay.merged_by[post.id]])
        for (post, features), seq in zip(replay.unclustered, seqs, strict=True)])
    touched = {r[1] for r in rows} | replay.before | set(merges.values())
    stories_db.refresh_many(conn, sorted(touched))
    stories_db.prune_empty(conn)
