"""The soak's verdict: what was observed, compared with the publisher's ground truth. No I/O.

Every check is a line of the report with its figure; `passed` is true only when all hold.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

OUTAGE_GRACE = 10.0  # seconds after PostgreSQL is back during which a 503 is still the outage's
HANG_SECONDS = 15.0  # an API answer slower than this counts as a hang
SHUTDOWN_BOUND = 20.0  # grace (5 s in the soak) plus the time to close pools and exit


@dataclass(frozen=True, slots=True)
class ApiCall:
    started: float  # epoch seconds
    seconds: float
    path: str
    status: int  # 0: no answer (connection error or client timeout)
    body: str  # first bytes of an error answer


@dataclass
class Observations:
    duration: float
    feeds: int
    rate: float
    truth: dict[str, Any] = field(default_factory=dict)
    posts: list[tuple[Any, ...]] = field(default_factory=list)  # id, url, primary, topics, source urls
    sources: list[tuple[Any, ...]] = field(default_factory=list)  # url, enabled, etag, ever ok, failures, kind
    fetches: list[tuple[Any, ...]] = field(default_factory=list)  # url, outcome, kind, worker, started, id
    digests: list[tuple[Any, ...]] = field(default_factory=list)
    mail: list[tuple[str, str, str]] = field(default_factory=list)
    calls: list[ApiCall] = field(default_factory=list)
    memory: list[dict[str, float]] = field(default_factory=list)
    kill: dict[str, Any] = field(default_factory=dict)
    db_outage: tuple[float, float] | None = None
    smtp_outage: tuple[float, float, bool] | None = None
    shutdown: dict[str, dict[str, Any]] = field(default_factory=dict)
    leases_after_shutdown: int | None = None
    resumed: bool = False
    drain_seconds: float | None = None
    log_events: dict[str, int] = field(default_factory=dict)  # event name -> lines in the service logs
    # connections the kernel refused during the run because a listen queue was full, machine-wide:
    # each costs the client a second or more, enough to fail a healthy feed's short deadline
    listen_overflows: int | None = None
    problems: list[str] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _posts(obs: Observations) -> dict[str, Any]:
    articles = obs.truth.get("articles", [])
    stored: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in obs.posts:
        stored[row[1]].append(row)
    expected = {a["url"]: a for a in articles}
    lost = [u for u in expected if u not in stored]
    duplicated = [u for u, rows in stored.items() if len(rows) > 1]
    unexpected = [u for u in stored if u not in expected]
    mislinked, mistagged = [], []
    for url, article in expected.items():
        rows = stored.get(url)
        if not rows:
            continue
        _, _, primary, topics, source_urls = rows[0]
        feeds = {s.split("127.0.0.1:", 1)[-1].split("/", 1)[-1] for s in source_urls}
        if feeds != {p.lstrip("/") for p in article["feeds"]}:
            mislinked.append(url)
        if article["primary"] not in (primary or []) or not set(article["topics"]) <= set(topics or []):
            mistagged.append(url)
    syndicated = sum(1 for a in articles if len(a["feeds"]) > 1)
    return {"published": len(articles), "syndicated": syndicated, "stored": len(stored), "lost": len(lost),
            "duplicated": len(duplicated), "unexpected": len(unexpected), "mislinked": len(mislinked),
            "mistagged": len(mistagged), "examples": (lost + duplicated + unexpected + mislinked + mistagged)[:5]}


def _feeds(obs: Observations) -> dict[str, Any]:
    truth = obs.truth.get("feeds", {})
    by_path = {url.split("127.0.0.1:", 1)[-1].split("/", 1)[-1]: row for url, row in
               ((r[0], r) for r in obs.sources)}
    disabled, never_ok, steady_failing = [], [], []
    for path, info in truth.items():
        row = by_path.get(path.lstrip("/"))
        if row is None:
            never_ok.append(path)
            continue
        _, enabled, _etag, ever_ok, failures, kind = row
        if not enabled:
            disabled.append(path)
        if not ever_ok:
            never_ok.append(path)
        if not info["kind"].startswith("flaky") and failures:
            steady_failing.append(f"{path} (last error: {kind})")
    outcomes = Counter(f[1] if f[1] != "error" else f"error:{f[2]}" for f in obs.fetches)
    flaky_faults: Counter[str] = Counter()
    for info in truth.values():
        if info["kind"].startswith("flaky"):
            flaky_faults.update(info["served"])
    return {"feeds": len(truth), "disabled": len(disabled), "never_polled_ok": len(never_ok),
            "healthy_feeds_failing_at_end": len(steady_failing), "fetches": sum(outcomes.values()),
            "fetches_by_outcome": dict(outcomes.most_common()), "faults_served": dict(flaky_faults),
            "listen_overflows_on_machine": obs.listen_overflows,
            "examples": (disabled + never_ok + steady_failing)[:5]}


def _api(obs: Observations) -> dict[str, Any]:
    outage = obs.db_outage
    in_outage = [c for c in obs.calls if outage and outage[0] - 1 <= c.started <= outage[1] + OUTAGE_GRACE]
    outside = [c for c in obs.calls if c not in set(in_outage)] if in_outage else list(obs.calls)
    errors_outside = [c for c in outside if c.status == 0 or c.status >= 500]
    bad_requests = [c for c in obs.calls if 400 <= c.status < 500]
    outage_5xx = [c for c in in_outage if c.status >= 500]
    unclear = [c for c in outage_5xx if c.status != 503 or "unavailable" not in c.body.lower()]
    hangs = [c for c in obs.calls if c.status == 0 or c.seconds > HANG_SECONDS]
    latencies = [c.seconds for c in outside if 200 <= c.status < 400]
    return {"requests": len(obs.calls), "errors_outside_outage": len(errors_outside),
            "client_errors": len(bad_requests), "requests_in_outage": len(in_outage), "outage_503": len(outage_5xx),
            "outage_unclear_errors": len(unclear), "hangs": len(hangs),
            "outage_max_seconds": max((c.seconds for c in in_outage), default=0.0),
            "p50_ms": round(1000 * (_percentile(latencies, 0.5) or 0), 1),
            "p99_ms": round(1000 * (_percentile(latencies, 0.99) or 0), 1),
            "max_ms": round(1000 * max(latencies, default=0), 1),
            "examples": [f"{c.status} {c.path} {c.body[:120]}" for c in (errors_outside + unclear + bad_requests)[:5]]}


def _memory(obs: Observations) -> dict[str, Any]:
    """The run process (API + scheduler + parse pool): its resident size after warm-up against the
    end; 'flat' is no growth beyond 20% + 40 MiB, the noise of a Python heap under load."""
    series = [(m["t"], m["run"]) for m in obs.memory if "run" in m]
    if len(series) < 8:
        return {"samples": len(series), "flat": False}
    warm = [v for t, v in series if t >= 0.2 * obs.duration][:5] or [series[len(series) // 4][1]]
    start = statistics.median(warm)
    end = statistics.median(v for _, v in series[-5:])
    peak = max(v for _, v in series)
    half = series[len(series) // 2:]
    slope = statistics.linear_regression([t for t, _ in half], [v for _, v in half]).slope if len(half) > 2 else 0.0
    return {"samples": len(series), "start_mib": round(start, 1), "end_mib": round(end, 1), "peak_mib": round(peak, 1),
            "slope_mib_per_hour_second_half": round(slope * 3600, 1),
            "flat": end <= start * 1.2 + 40}


def _digests(obs: Observations) -> dict[str, Any]:
    per_rcpt = Counter(r for r, _, s in obs.mail if not s.lower().startswith("confirm"))
    ids = Counter(mid for _, mid, _ in obs.mail)
    return {"subscribers": len(per_rcpt), "messages": sum(per_rcpt.values()),
            "duplicated": sum(n - 1 for n in per_rcpt.values() if n > 1) + sum(n - 1 for n in ids.values() if n > 1),
            "failed_attempts_seen_while_smtp_down": bool(obs.smtp_outage and obs.smtp_outage[2]),
            "states": dict(Counter(d[1] for d in obs.digests))}


def _takeover(obs: Observations) -> dict[str, Any]:
    if not obs.kill:
        return {"killed": False}
    leased = set(obs.kill.get("leased", []))
    killed = f":{obs.kill['pid']}:"
    taken = {f[5] for f in obs.fetches if f[5] in leased and f[4] > obs.kill["at"] and killed not in f[3]}
    return {"killed": True, "leases_held_at_kill": len(leased), "taken_over": len(taken)}


def evaluate(obs: Observations) -> dict[str, Any]:
    posts, feeds, api = _posts(obs), _feeds(obs), _api(obs)
    memory, digests, takeover = _memory(obs), _digests(obs), _takeover(obs)
    checks = {
        "every published post stored": posts["published"] > 0 and posts["lost"] == 0,
        "no post stored twice": posts["duplicated"] == 0 and posts["unexpected"] == 0,
        "cross-feed duplicates linked to every feed": posts["mislinked"] == 0,
        "known tags right": posts["mistagged"] == 0,
        "no feed disabled, every feed polled": feeds["disabled"] == 0 and feeds["never_polled_ok"] == 0,
        "healthy feeds end healthy": feeds["healthy_feeds_failing_at_end"] == 0,
        "API: no 5xx or failed request outside the outage": api["errors_outside_outage"] == 0,
        "API: no 4xx (the load asks valid questions)": api["client_errors"] == 0,
        "API: outage answered 503 with a clear body": api["outage_unclear_errors"] == 0,
        "API: never hangs": api["hangs"] == 0,
        "killed worker's feeds taken over": takeover.get("leases_held_at_kill", 0) > 0
        and takeover["taken_over"] == takeover["leases_held_at_kill"],
        "digests: one per subscriber, none twice": digests["subscribers"] == 5 and digests["duplicated"] == 0,
        "digests: failed while SMTP was down": digests["failed_attempts_seen_while_smtp_down"],
        "memory flat": memory["flat"],
        "SIGTERM: bounded, clean exit": bool(obs.shutdown) and all(
            s["exit"] == 0 and s["seconds"] <= SHUTDOWN_BOUND for s in obs.shutdown.values()),
        "SIGTERM: leases released": obs.leases_after_shutdown == 0,
        "next start resumes": obs.resumed,
        "drained": obs.drain_seconds is not None,
        "no traceback in the service logs": obs.log_events.get("Traceback", 0) == 0,
        "no harness problem": not obs.problems,
    }
    return {"passed": all(checks.values()), "checks": checks, "posts": posts, "feeds": feeds, "api": api,
            "memory": memory, "digests": digests, "takeover": takeover, "shutdown": obs.shutdown,
            "db_outage_seconds": round(obs.db_outage[1] - obs.db_outage[0], 1) if obs.db_outage else None,
            "drain_seconds": obs.drain_seconds, "log_events": obs.log_events, "problems": obs.problems,
            "run": {"minutes": obs.duration / 60, "feeds": obs.feeds, "rate": obs.rate}}


def format_report(result: dict[str, Any]) -> str:
    lines = [f"soak: {'PASSED' if result['passed'] else 'FAILED'}"]
    lines += [f"  [{'ok' if ok else 'FAIL'}] {name}" for name, ok in result["checks"].items()]
    for part in ("posts", "feeds", "api", "memory", "digests", "takeover", "shutdown"):
        lines.append(f"  {part}: {result[part]}")
    lines.append(f"  db outage: {result['db_outage_seconds']} s, drain: {result['drain_seconds']}")
    lines.append(f"  log events: {result['log_events']}")
    lines += [f"  problem: {p}" for p in result["problems"]]
    return "\n".join(lines)
