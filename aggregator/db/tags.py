"""SQL for tags: replace a post's tags (rows with evidence + the filterable arrays on posts)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from aggregator.tagging import Tag


@dataclass(frozen=True, slots=True)
class TagRow:
    kind: str
    code: str
    role: str | None
    score: float
    evidence: list[dict[str, object]]
    taxonomy_version: str


def _evidence_json(tag: Tag) -> str:
    return json.dumps(
        [{"field": e.field, "start": e.start, "end": e.end, "phrase": e.phrase, "rule": e.rule,
          "weight": e.weight} for e in tag.evidence],
        ensure_ascii=False,
    )


def replace_tags(
    conn: psycopg.Connection,
    tagged: Sequence[tuple[int, Sequence[Tag]]],
    taxonomy_version: str,
    *,
    update_posts: bool = False,
    langs: Mapping[int, str | None] | None = None,
) -> None:
    """Set the tag rows (with evidence) of these posts, dropping their old ones.

    `update_posts` also rewrites the filterable arrays on `posts` (retag), and `langs` their detected
    languages in the same statement: every rewrite of a post row recomputes its search vector, so a row
    is written once. Ingestion writes those with the post itself, so a new post's row is written once.
    """
    if not tagged:
        return
    ids = [post_id for post_id, _ in tagged]
    conn.execute("DELETE FROM post_tags WHERE post_id = ANY(%(ids)s)", {"ids": ids})
    with conn.cursor().copy(
        "COPY post_tags (post_id, kind, code, role, score, evidence, taxonomy_version) FROM STDIN"
    ) as copy:
        for post_id, tags in tagged:
            for t in tags:
                copy.write_row((post_id, t.kind, t.code, t.role, round(t.score, 4), _evidence_json(t),
                                taxonomy_version))
    if update_posts:
        _update_arrays(conn, tagged, taxonomy_version, langs)


def _update_arrays(conn: psycopg.Connection, tagged: Sequence[tuple[int, Sequence[Tag]]], version: str,
                   langs: Mapping[int, str | None] | None) -> None:
    """One statement for the batch; rows whose arrays and version are already right are not rewritten."""
    rows = [
        {"id": post_id,
         "countries": [t.code for t in tags if t.kind == "country"],
         "primary_countries": [t.code for t in tags if t.role == "primary"],
         "topics": [t.code for t in tags if t.kind == "topic"],
         "places": [t.code for t in tags if t.kind == "place"],
         "lang": langs.get(post_id) if langs is not None else None}
        for post_id, tags in tagged
    ]
    conn.execute(
        """
        UPDATE posts p SET countries = r.countries, primary_countries = r.primary_countries,
                           topics = r.topics, places = r.places, taxonomy_version = %(version)s,
                           lang = CASE WHEN %(set_lang)s THEN r.lang ELSE p.lang END
        FROM jsonb_to_recordset(%(rows)s::jsonb)
             AS r(id bigint, countries text[], primary_countries text[], topics text[], places text[], lang text)
        WHERE p.id = r.id
          AND (p.countries, p.primary_countries, p.topics, p.places, p.taxonomy_version,
               CASE WHEN %(set_lang)s THEN r.lang ELSE p.lang END)
              IS DISTINCT FROM (r.countries, r.primary_countries, r.topics, r.places, %(version)s, p.lang)
        """,
        {"rows": json.dumps(rows), "version": version, "set_lang": langs is not None},
    )


def for_post(conn: psycopg.Connection, post_id: int) -> list[TagRow]:
    rows = conn.execute(
        """
        SELECT kind, code, role, score, evidence, taxonomy_version FROM post_tags
        WHERE post_id = %(id)s ORDER BY kind, score DESC, code
        """,
        {"id": post_id},
    ).fetchall()
    return [TagRow(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class PostForTagging:
    id: int
    title: str
    text: str
    categories: list[str]
    default_countries: list[str]
    default_topics: list[str]
    lang: str | None = None


def batch_for_retag(
    conn: psycopg.Connection, *, after_id: int, limit: int, since: datetime | None
) -> list[PostForTagging]:
    """The next batch of posts by id (keyset: cheap at any depth), with their source's defaults."""
    rows = conn.execute(
        """
        SELECT p.id, p.title, p.text, p.categories,
               coalesce(s.default_countries, '{}'), coalesce(s.default_topics, '{}'), p.lang
        FROM posts p LEFT JOIN sources s ON s.id = p.source_id
        WHERE p.id > %(after)s AND (%(since)s::timestamptz IS NULL OR p.sort_at >= %(since)s)
        ORDER BY p.id
        LIMIT %(limit)s
        """,
        {"after": after_id, "limit": limit, "since": since},
    ).fetchall()
    return [PostForTagging(*r) for r in rows]


def count_for_retag(conn: psycopg.Connection, since: datetime | None) -> int:
    row = conn.execute(
        "SELECT count(*) FROM posts WHERE %(since)s::timestamptz IS NULL OR sort_at >= %(since)s",
        {"since": since},
    ).fetchone()
    return int(row[0]) if row else 0
