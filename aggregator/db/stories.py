"""SQL for stories: the clustered window, a poll's assignments and merges, and reading stories back.

Clustering runs under one transaction-scoped advisory lock (`lock_clustering`): two workers that
store reports of one event at the same moment take turns, and the second sees the first's story
(the lock is held to commit, so what it waits for is committed when it gets it). Each worker keeps
the window in memory and reads only the rows clustered since its last turn (`turn_start`, by
story_seq, the order of the turns), so a turn is a few statements whatever the poll's size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import set_json_loads

from aggregator.db.post_filters import filtered, where
from aggregator.query import StoryQuery

CLUSTERING_LOCK = 0x5708_1E5  # pg_advisory_xact_lock key of story clustering
STORY_IDS = "stories_id_seq"
CLUSTER_ORDER = "story_seq"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ClusteredRow:
    """A clustered post as clustering replays it: its story now, its date, its place in the
    clustering order, its features (None when the reader said it has them) and what it merged."""

    post_id: int
    story_id: int
    at: datetime
    seq: int
    features: dict[str, Any] | None
    merged: list[int]
    story_first: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewStory:
    id: int
    title: str
    origin_post_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class NewKeys:
    post_id: int
    story_id: int
    at: datetime
    seq: int
    features: dict[str, object]
    quiet: bool
    merged: list[int]


@dataclass(frozen=True, slots=True)
class StoryRow:
    id: int
    title: str
    origin_post_id: int
    first_post_id: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    post_count: int
    source_count: int
    updated_at: datetime
    merged_into: int | None


@dataclass(frozen=True, slots=True)
class StoryPostRow:
    id: int
    title: str
    url: str | None
    lang: str | None
    sort_at: datetime
    source_id: int | None
    source_name: str | None
    source_url: str | None


def lock_clustering(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": CLUSTERING_LOCK})


_EPOCH = "SELECT epoch FROM story_clustering"


def epoch(conn: psycopg.Connection) -> int:
    """Changes whenever assignments were rewritten in place (recluster): a worker then reloads."""
    row = conn.execute(_EPOCH).fetchone()
    return int(row[0]) if row else 0


def bump_epoch(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE story_clustering SET epoch = epoch + 1")


def last_seq(conn: psycopg.Connection) -> int:
    """The place in the clustering order of the latest clustered post (0: none)."""
    row = conn.execute("SELECT coalesce(max(story_seq), 0) FROM post_story_keys").fetchone()
    return int(row[0]) if row else 0


def newest_at(conn: psycopg.Connection) -> datetime | None:
    """The latest date of a clustered post (the window ends there)."""
    row = conn.execute("SELECT max(at) FROM post_story_keys WHERE story_id IS NOT NULL").fetchone()
    return row[0] if row else None


def _features_cursor(conn: psycopg.Connection, row: type[T], name: str = "") -> psycopg.Cursor[T]:
    """A cursor for rows carrying a post's stored features, their JSON parsed by orjson: a worker
    reads every post another one clustered, and a whole window when it loads one (some 200 keys and
    numbers a post), and the standard library's parser took about twice as long."""
    cur = conn.cursor(name, row_factory=class_row(row)) if name else conn.cursor(row_factory=class_row(row))
    set_json_loads(orjson.loads, cur)
    return cur


def window_rows(conn: psycopg.Connection, since: datetime) -> Iterator[ClusteredRow]:
    """Clustered posts dated `since` or later, in clustering order, with when their story began."""
    yield from _features_cursor(conn, ClusteredRow).execute(
        """
        SELECT k.post_id, k.story_id, k.at, k.story_seq AS seq, k.features, k.merged,
               s.first_seen_at AS story_first
        FROM post_story_keys k JOIN stories s ON s.id = k.story_id
        WHERE k.at >= %(since)s
        ORDER BY k.story_seq
        """,
        {"since": since},
    )


# Nothing when the epoch changed: the worker loads its whole window then, and a recluster may have
# rewritten every row after its place.
_ROWS_SINCE = """
    SELECT post_id, story_id, at, story_seq AS seq,
           CASE WHEN story_seq = ANY(%(known)s) THEN NULL ELSE features END AS features, merged
    FROM post_story_keys
    WHERE story_seq > %(seq)s AND story_id IS NOT NULL
      AND (SELECT epoch FROM story_clustering) = %(epoch)s
    ORDER BY story_seq
"""

# A turn's places in the clustering order and its story ids, one of each per row.
_NEXT_IDS = "SELECT nextval(%(order)s::regclass), nextval(%(stories)s::regclass) FROM generate_series(1, %(n)s)"


def next_ids(conn: psycopg.Connection, sequence: str, count: int) -> list[int]:
    """`count` values of a sequence in one round trip (places in the clustering order, story ids)."""
    if count <= 0:
        return []
    rows = conn.execute("SELECT nextval(%(seq)s::regclass) FROM generate_series(1, %(n)s)",
                        {"seq": sequence, "n": count}).fetchall()
    return sorted(int(r[0]) for r in rows)


@dataclass(frozen=True, slots=True)
class TurnStart:
    """What a clustering turn reads once it holds the lock, in one round trip."""

    epoch: int
    rows: list[ClusteredRow]  # clustered after the worker's last place, in order
    seqs: list[int]  # places in the clustering order for the turn's posts
    story_ids: list[int]  # ids for the stories the turn may start (one per post; the unused are skipped)


def turn_start(conn: psycopg.Connection, after_seq: int | None, epoch: int, known: Sequence[int],
               count: int) -> TurnStart:
    """The epoch, the rows clustered after `after_seq` if the epoch is still `epoch` (none read
    when `after_seq` is None: the window will be loaded) and the turn's ids, in one round trip:
    under the clustering lock every round trip is a wait for every other worker, and in a busy
    process each also waits for the interpreter lock when its answer comes. (Results are read after
    the pipeline ends: fetching inside it would cost a round trip of its own.)"""
    with conn.pipeline():
        epoch_cur = conn.execute(_EPOCH)
        rows_cur = None if after_seq is None else _features_cursor(conn, ClusteredRow).execute(
            _ROWS_SINCE, {"seq": after_seq, "epoch": epoch, "known": list(known)})
        ids_cur = conn.execute(_NEXT_IDS, {"order": CLUSTER_ORDER, "stories": STORY_IDS, "n": count})
    epoch_row = epoch_cur.fetchone()
    ids = ids_cur.fetchall()
    return TurnStart(int(epoch_row[0]) if epoch_row else 0, [] if rows_cur is None else rows_cur.fetchall(),
                     sorted(int(r[0]) for r in ids), sorted(int(r[1]) for r in ids))


def insert_stories(conn: psycopg.Connection, stories: Sequence[NewStory]) -> None:
    """Stories started in this turn, with the ids the caller drew from STORY_IDS, each counted as
    its first post alone (a new post, linked to the one source that brought it): what `refresh`
    would say of a story that nothing else joined in the turn, so only the others need it."""
    if not stories:
        return
    conn.execute(
        """
        INSERT INTO stories (id, title, origin_post_id, first_post_id, first_seen_at, last_seen_at,
                             post_count, source_count)
        SELECT s.id, s.title, s.post, s.post, s.at, s.at, 1, 1
        FROM unnest(%(ids)s::bigint[], %(titles)s::text[], %(posts)s::bigint[], %(ats)s::timestamptz[])
             AS s(id, title, post, at)
        """,
        {"ids": [s.id for s in stories], "titles": [s.title for s in stories],
         "posts": [s.origin_post_id for s in stories], "ats": [s.at for s in stories]},
    )


def merge_many(conn: psycopg.Connection, merges: dict[int, int]) -> None:
    """Each story of `merges` moves into the one it maps to (its survivor, final); it and what
    redirected to it redirect there."""
    if not merges:
        return
    params = {"others": list(merges), "survivors": list(merges.values())}
    conn.execute(
        """
        UPDATE post_story_keys k SET story_id = m.survivor
        FROM unnest(%(others)s::bigint[], %(survivors)s::bigint[]) AS m(other, survivor)
        WHERE k.story_id = m.other
        """,
        params,
    )
    conn.execute(
        """
        UPDATE stories s SET merged_into = m.survivor, post_count = 0, source_count = 0
        FROM unnest(%(others)s::bigint[], %(survivors)s::bigint[]) AS m(other, survivor)
        WHERE s.id = m.other OR s.merged_into = m.other
        """,
        params,
    )


KEYS_CHUNK = 5_000  # replay rows per INSERT (recluster writes a whole archive's)


def insert_keys(conn: psycopg.Connection, rows: Sequence[NewKeys]) -> None:
    """Each post's story (the one place it is stored: migration 0017), and what clustering replays
    for it: date, place in the order, features, merges.

    An INSERT from arrays, not COPY: a turn sends it in one pipeline with its other writes (COPY
    cannot be pipelined), and each round trip under the clustering lock makes every worker wait. The
    features go in binary: as an array literal every quote of their JSON would be escaped in Python.
    Their JSON is written by orjson: the standard library's encoder took about 20 µs a post (some 200
    keys and numbers each), orjson a third of that."""
    for start in range(0, len(rows), KEYS_CHUNK):
        chunk = rows[start:start + KEYS_CHUNK]
        conn.execute(
            """
            INSERT INTO post_story_keys (post_id, story_id, at, story_seq, features, quiet, merged)
            SELECT r.post, r.story, r.at, r.seq, r.features::json, r.quiet, r.merged::bigint[]
            FROM unnest(%(posts)s::bigint[], %(stories)s::bigint[], %(ats)s::timestamptz[], %(seqs)s::bigint[],
                        %(features)b::text[], %(quiet)s::boolean[], %(merged)s::text[])
                 AS r(post, story, at, seq, features, quiet, merged)
            """,
            {"posts": [r.post_id for r in chunk], "stories": [r.story_id for r in chunk],
             "ats": [r.at for r in chunk], "seqs": [r.seq for r in chunk],
             "features": [orjson.dumps(r.features).decode() for r in chunk],
             "quiet": [r.quiet for r in chunk],
             "merged": ["{" + ",".join(map(str, r.merged)) + "}" for r in chunk]},
        )


def refresh(conn: psycopg.Connection, story_ids: Sequence[int]) -> None:
    """Recount a story's posts and sources and its first and last dates; its title is its first post's."""
    if not story_ids:
        return
    conn.execute(
        """
        UPDATE stories s SET
            post_count = agg.posts, source_count = agg.sources, first_seen_at = agg.first_at,
            last_seen_at = agg.last_at, first_post_id = agg.first_post, title = agg.title, updated_at = now()
        FROM (
            SELECT k.story_id,
                   count(DISTINCT p.id) AS posts,
                   count(DISTINCT ps.source_id) AS sources,
                   min(p.sort_at) AS first_at, max(p.sort_at) AS last_at,
                   (array_agg(p.id ORDER BY p.sort_at, p.id))[1] AS first_post,
                   (array_agg(p.title ORDER BY p.sort_at, p.id) FILTER (WHERE p.title <> ''))[1] AS title
            FROM post_story_keys k JOIN posts p ON p.id = k.post_id LEFT JOIN post_sources ps ON ps.post_id = p.id
            WHERE k.story_id = ANY(%(ids)s)
            GROUP BY k.story_id
        ) agg
        WHERE s.id = agg.story_id
        """,
        {"ids": list(story_ids)},
    )


def get(conn: psycopg.Connection, story_id: int) -> StoryRow | None:
    cur = conn.cursor(row_factory=class_row(StoryRow))
    return cur.execute("SELECT * FROM stories WHERE id = %(id)s", {"id": story_id}).fetchone()


def resolve(conn: psycopg.Connection, story_id: int) -> StoryRow | None:
    """The story itself, or the one it was merged into."""
    story = get(conn, story_id)
    if story is not None and story.merged_into is not None:
        return get(conn, story.merged_into)
    return story


def posts_of(conn: psycopg.Connection, story_id: int) -> list[StoryPostRow]:
    """A story's posts in date order, each with the source that first carried it."""
    cur = conn.cursor(row_factory=class_row(StoryPostRow))
    return cur.execute(
        """
        SELECT p.id, p.title, p.url, p.lang, p.sort_at, s.id AS source_id,
               coalesce(s.name, s.title, s.url) AS source_name, s.url AS source_url
        FROM post_story_keys k JOIN posts p ON p.id = k.post_id LEFT JOIN sources s ON s.id = p.source_id
        WHERE k.story_id = %(id)s
        ORDER BY p.sort_at, p.id
        """,
        {"id": story_id},
    ).fetchall()


def list_stories(conn: psycopg.Connection, query: StoryQuery) -> list[StoryRow]:
    """Live stories with a post matching the filter and enough sources, latest activity first
    (one more than the limit, to tell whether there is a next page)."""
    condition, params = where(query.filter)
    after = sql.SQL("true")
    if query.cursor is not None:
        after = sql.SQL("(s.last_seen_at, s.id) < (%(after_at)s, %(after_id)s)")
        params |= {"after_at": query.cursor.published, "after_id": query.cursor.id}
    statement = sql.SQL("""
        SELECT s.* FROM stories s
        WHERE s.merged_into IS NULL AND s.source_count >= %(min_sources)s AND {after}
          AND EXISTS (SELECT 1 FROM post_story_keys k JOIN posts p ON p.id = k.post_id
                      WHERE k.story_id = s.id AND {condition})
        ORDER BY s.last_seen_at DESC, s.id DESC
        LIMIT %(limit)s
    """).format(after=after, condition=condition)
    params |= {"min_sources": query.min_sources, "limit": query.limit + 1}
    return filtered(conn.cursor(row_factory=class_row(StoryRow)), statement, params).fetchall()


def titles_in(conn: psycopg.Connection, story_ids: Sequence[int], lang: str) -> dict[int, str]:
    """The first post title in `lang` of each story that has one (a reader's preferred language)."""
    rows = conn.execute(
        """
        SELECT DISTINCT ON (k.story_id) k.story_id, p.title
        FROM post_story_keys k JOIN posts p ON p.id = k.post_id
        WHERE k.story_id = ANY(%(ids)s) AND p.lang = %(lang)s AND p.title <> ''
        ORDER BY k.story_id, p.sort_at, p.id
        """,
        {"ids": list(story_ids), "lang": lang},
    ).fetchall()
    return {int(r[0]): r[1] for r in rows}


# --- recluster -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReplayRow:
    """A clustered post as recluster replays it; `replay`: first seen since the date (decided
    again), else kept where it is."""

    post_id: int
    story_id: int | None
    at: datetime
    seq: int
    features: dict[str, Any]
    replay: bool


@dataclass(frozen=True, slots=True)
class PostToCluster:
    id: int
    title: str
    text: str
    at: datetime
    quiet: bool


def replay_start(conn: psycopg.Connection, since: datetime) -> datetime | None:
    """The earliest date of a clustered post first seen since `since` (the replay's window
    begins one window before it)."""
    row = conn.execute(
        """
        SELECT min(k.at) FROM post_story_keys k JOIN posts p ON p.id = k.post_id
        WHERE p.first_seen_at >= %(since)s
        """,
        {"since": since},
    ).fetchone()
    return row[0] if row else None


def replay_rows(conn: psycopg.Connection, since: datetime, window_start: datetime,
                after_seq: int) -> Iterator[ReplayRow]:
    """Clustered posts after `after_seq` in clustering order: those first seen since `since`, and
    the others dated from `window_start` (what the replayed posts are compared with). Streamed."""
    with _features_cursor(conn, ReplayRow, name="story_replay") as cur:
        cur.itersize = 5000
        cur.execute(
            """
            SELECT k.post_id, k.story_id, k.at, k.story_seq AS seq, k.features,
                   p.first_seen_at >= %(since)s AS replay
            FROM post_story_keys k JOIN posts p ON p.id = k.post_id
            WHERE k.story_seq > %(after)s
              AND (p.first_seen_at >= %(since)s OR (k.story_id IS NOT NULL AND k.at >= %(start)s))
            ORDER BY k.story_seq
            """,
            {"since": since, "start": window_start, "after": after_seq},
        )
        yield from cur


def unclustered(conn: psycopg.Connection, since: datetime, archive_age: timedelta) -> list[PostToCluster]:
    """Posts first seen since `since` that were never clustered (stored before clustering existed),
    by id: recluster clusters them after the others. Quiet: dated `archive_age` before they arrived."""
    cur = conn.cursor(row_factory=class_row(PostToCluster))
    return cur.execute(
        """
        SELECT p.id, p.title, p.text, p.sort_at AS at, p.sort_at < p.first_seen_at - %(archive_age)s AS quiet
        FROM posts p
        WHERE p.first_seen_at >= %(since)s AND NOT EXISTS (SELECT 1 FROM post_story_keys k WHERE k.post_id = p.id)
        ORDER BY p.id
        """,
        {"since": since, "archive_age": archive_age},
    ).fetchall()


def upsert_stories(conn: psycopg.Connection, origins: Sequence[int], ats: Sequence[datetime]) -> dict[int, int]:
    """The story each post starts, re-made with the id it had when it started one before (keyed by
    the post); {post: story id}."""
    found: dict[int, int] = {}
    for i in range(0, len(origins), 50_000):
        rows = conn.execute(
            """
            INSERT INTO stories (title, origin_post_id, first_post_id, first_seen_at, last_seen_at)
            SELECT p.title, s.post, s.post, s.at, s.at
            FROM unnest(%(posts)s::bigint[], %(ats)s::timestamptz[]) AS s(post, at) JOIN posts p ON p.id = s.post
            ON CONFLICT (origin_post_id) DO UPDATE
            SET merged_into = NULL, title = EXCLUDED.title, first_post_id = EXCLUDED.first_post_id,
                first_seen_at = EXCLUDED.first_seen_at, last_seen_at = EXCLUDED.last_seen_at
            RETURNING origin_post_id, id
            """,
            {"posts": list(origins[i:i + 50_000]), "ats": list(ats[i:i + 50_000])},
        ).fetchall()
        found.update((int(r[0]), int(r[1])) for r in rows)
    return found


def reassign(conn: psycopg.Connection, rows: Sequence[tuple[int, int, list[int]]]) -> None:
    """(post, story, stories it merged) of replayed posts: written where they changed (COPY into a
    scratch table, then one UPDATE of post_story_keys)."""
    conn.execute("CREATE TEMP TABLE story_reassign (post bigint PRIMARY KEY, story bigint NOT NULL, "
                 "merged bigint[] NOT NULL) ON COMMIT DROP")
    with conn.cursor().copy("COPY story_reassign (post, story, merged) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute("ANALYZE story_reassign")
    conn.execute("UPDATE post_story_keys k SET story_id = a.story, merged = a.merged FROM story_reassign a "
                 "WHERE k.post_id = a.post AND (k.story_id IS DISTINCT FROM a.story OR k.merged <> a.merged)")
    conn.execute("DROP TABLE story_reassign")


def refresh_many(conn: psycopg.Connection, story_ids: Sequence[int], chunk: int = 20_000) -> None:
    for i in range(0, len(story_ids), chunk):
        refresh(conn, story_ids[i:i + chunk])


def prune_empty(conn: psycopg.Connection) -> int:
    """Delete stories left without posts that nothing redirects to and that redirect nowhere."""
    cur = conn.execute(
        """
        DELETE FROM stories s
        WHERE s.merged_into IS NULL
          AND NOT EXISTS (SELECT 1 FROM post_story_keys k WHERE k.story_id = s.id)
          AND NOT EXISTS (SELECT 1 FROM stories t WHERE t.merged_into = s.id)
        """
    )
    return cur.rowcount


def stored_tags(conn: psycopg.Connection, post_ids: Sequence[int]) -> dict[int, list[tuple[str, str, list[str]]]]:
    """(kind, code, evidence phrases) of these posts' tags, for posts clustered for the first time."""
    rows = conn.execute(
        """
        SELECT post_id, kind, code, coalesce(ARRAY(SELECT e->>'phrase' FROM jsonb_array_elements(evidence) e), '{}')
        FROM post_tags WHERE post_id = ANY(%(ids)s) ORDER BY post_id, kind, score DESC, code
        """,
        {"ids": list(post_ids)},
    ).fetchall()
    found: dict[int, list[tuple[str, str, list[str]]]] = {}
    for post_id, kind, code, phrases in rows:
        found.setdefault(int(post_id), []).append((kind, code, list(phrases)))
    return found


# --- surge alerts ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DayCount:
    kind: str  # country | place | topic
    code: str
    day: Any  # datetime.date
    stories: int


def daily_story_counts(conn: psycopg.Connection, start: datetime, end: datetime) -> list[DayCount]:
    """Distinct stories per day and country (primary), place and topic, each story counted on the
    day of its first post that is not quiet (a backfill, a first poll or an archive republished
    is not news today), with the tags of its non-quiet posts."""
    cur = conn.cursor(row_factory=class_row(DayCount))
    return cur.execute(
        """
        WITH loud AS (
            SELECT k.story_id, p.sort_at, p.id, p.primary_countries, p.places, p.topics
            FROM posts p JOIN post_story_keys k ON k.post_id = p.id
            WHERE NOT k.quiet AND k.story_id IS NOT NULL
              AND p.sort_at >= %(start)s - interval '3 days' AND p.sort_at < %(end)s
        ), firsts AS (
            SELECT DISTINCT ON (story_id) story_id, (sort_at AT TIME ZONE 'UTC')::date AS day, sort_at
            FROM loud ORDER BY story_id, sort_at, id
        ), tags AS (
            SELECT story_id, 'country' AS kind, unnest(primary_countries) AS code FROM loud
            UNION SELECT story_id, 'place', unnest(places) FROM loud
            UNION SELECT story_id, 'topic', unnest(topics) FROM loud
        )
        SELECT t.kind, t.code, f.day, count(DISTINCT f.story_id)::int AS stories
        FROM firsts f JOIN tags t ON t.story_id = f.story_id
        WHERE f.sort_at >= %(start)s
          AND NOT EXISTS (SELECT 1 FROM posts e JOIN post_story_keys ek ON ek.post_id = e.id
                          WHERE ek.story_id = f.story_id AND NOT ek.quiet AND e.sort_at < %(start)s - interval '3 days')
        GROUP BY t.kind, t.code, f.day
        """,
        {"start": start, "end": end},
    ).fetchall()


def story_titles(conn: psycopg.Connection, kind: str, code: str, day_start: datetime,
                 day_end: datetime, limit: int = 20) -> list[tuple[int, str]]:
    """The stories behind a count: first non-quiet post on that day, tagged `kind`/`code`."""
    column = {"country": "primary_countries", "place": "places", "topic": "topics"}[kind]
    statement = sql.SQL("""
        SELECT s.id, s.title
        FROM stories s,
             LATERAL (SELECT min(p.sort_at) AS at FROM posts p JOIN post_story_keys k ON k.post_id = p.id
                      WHERE k.story_id = s.id AND NOT k.quiet) AS first_loud
        WHERE s.merged_into IS NULL
          AND first_loud.at >= %(start)s AND first_loud.at < %(end)s
          AND EXISTS (SELECT 1 FROM post_story_keys k JOIN posts p ON p.id = k.post_id
                      WHERE k.story_id = s.id AND %(code)s = ANY(p.{column}))
          AND s.last_seen_at >= %(start)s
        ORDER BY s.source_count DESC, s.id
        LIMIT %(limit)s
    """).format(column=sql.Identifier(column))
    rows = conn.execute(statement, {"start": day_start, "end": day_end, "code": code, "limit": limit}).fetchall()
    return [(int(r[0]), r[1]) for r in rows]
