"""SQL of health figures computed from the database: polling health behind /metrics, and the sources page's rates.

Why from the database and not from in-process counters: polling happens in worker processes
(maybe on other machines) while /metrics is served by an API process; the fetch log and the
sources table are what they all share.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True, slots=True)
class PollingStats:
    fetches: dict[str, int]  # outcome -> fetches in the window
    posts_ingested: int  # new posts stored by those fetches
    sources: dict[str, int]  # ok | failing | disabled -> sources
    overdue: int  # enabled, unleased sources whose next poll is in the past
    max_lag_seconds: float  # how far the most overdue of them is behind


def polling_stats(conn: psycopg.Connection, *, window_seconds: int) -> PollingStats:
    fetches: dict[str, int] = {}
    ingested = 0
    for outcome, count, new_posts in conn.execute(
        """
        SELECT outcome, count(*), coalesce(sum(new_posts), 0) FROM fetch_log
        WHERE started_at >= now() - make_interval(secs => %(window)s)
        GROUP BY outcome
        """,
        {"window": window_seconds},
    ).fetchall():
        fetches[outcome] = count
        ingested += new_posts
    row = conn.execute(
        """
        SELECT count(*) FILTER (WHERE enabled AND consecutive_failures = 0),
               count(*) FILTER (WHERE enabled AND consecutive_failures > 0),
               count(*) FILTER (WHERE NOT enabled),
               count(*) FILTER (WHERE enabled AND lease_owner IS NULL AND next_poll_at < now()),
               coalesce(extract(epoch FROM max(now() - next_poll_at)
                                FILTER (WHERE enabled AND lease_owner IS NULL AND next_poll_at < now())), 0)
        FROM sources
        """
    ).fetchone()
    assert row is not None
    ok, failing, disabled, overdue, lag = row
    return PollingStats(fetches, int(ingested), {"ok": ok, "failing": failing, "disabled": disabled},
                        overdue, float(lag))


def posts_per_day(conn: psycopg.Connection, *, days: int = 30) -> dict[int, float]:
    """source id -> posts it carried per day over the last `days` days (by when they were first seen)."""
    rows = conn.execute(
        """
        SELECT source_id, count(*)::float / %(days)s FROM post_sources
        WHERE first_seen_at >= now() - make_interval(days => %(days)s)
        GROUP BY source_id
        """,
        {"days": days},
    ).fetchall()
    return {source_id: rate for source_id, rate in rows}
