"""The soak in its short form (bench/soak): the whole service for three minutes under load and
faults, checked against the publisher's ground truth. Plus the verdict's own checks, table-driven,
so a soak that lost or doubled a post cannot pass.

The run is a subprocess with its own PostgreSQL, feed server, SMTP server and service processes;
it needs nothing from the test session but a Python with the project installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak.check import ApiCall, Observations, evaluate

ROOT = Path(__file__).resolve().parents[1]

FEED = "http://127.0.0.1:9/feeds/"


def observations(**changes: object) -> Observations:
    """One article in two feeds, stored once and linked to both, tagged right; API calls all 200."""
    obs = Observations(duration=60, feeds=2, rate=1)
    obs.truth = {
        "articles": [{"url": "https://a.example/1", "feeds": ["/feeds/000.xml", "/feeds/001.xml"],
                      "primary": "KZ", "topics": ["terrorism"]}],
        "feeds": {"/feeds/000.xml": {"kind": "blogger", "served": {}},
                  "/feeds/001.xml": {"kind": "flaky-rss", "served": {"500": 2}}},
    }
    obs.posts = [(1, "https://a.example/1", ["KZ"], ["terrorism", "military"],
                  [FEED + "000.xml", FEED + "001.xml"])]
    obs.sources = [(FEED + "000.xml", True, '"e"', True, 0, None), (FEED + "001.xml", True, None, True, 1, "http")]
    obs.calls = [ApiCall(1000.0 + i, 0.01, "/api/v1/posts", 200, "") for i in range(20)]
    for name, value in changes.items():
        setattr(obs, name, value)
    return obs


@pytest.mark.parametrize(("change", "failed_check"), [
    ({"posts": []}, "every published post stored"),
    ({"posts": [(1, "https://a.example/1", ["KZ"], ["terrorism"], [FEED + "000.xml"]),
                (2, "https://a.example/1", ["KZ"], ["terrorism"], [FEED + "001.xml"])]}, "no post stored twice"),
    ({"posts": [(1, "https://a.example/1", ["KZ"], ["terrorism"], [FEED + "000.xml"])]},
     "cross-feed duplicates linked to every feed"),
    ({"posts": [(1, "https://a.example/1", ["RU"], ["terrorism"], [FEED + "000.xml", FEED + "001.xml"])]},
     "known tags right"),
    ({"sources": [(FEED + "000.xml", True, None, True, 2, "http"), (FEED + "001.xml", True, None, True, 0, None)]},
     "healthy feeds end healthy"),
    ({"calls": [ApiCall(1000.0, 0.01, "/api/v1/posts", 500, "internal")]},
     "API: no 5xx or failed request outside the outage"),
    ({"calls": [ApiCall(1000.0, 16.0, "/api/v1/posts", 200, "")]}, "API: never hangs"),
    ({"calls": [ApiCall(1000.0, 0.1, "/api/v1/posts", 500, "internal")], "db_outage": (999.0, 1005.0)},
     "API: outage answered 503 with a clear body"),
])
def test_the_verdict_fails_on_each_kind_of_fault(change: dict[str, object], failed_check: str) -> None:
    baseline = evaluate(observations())["checks"]
    assert baseline[failed_check], f"the baseline passes {failed_check!r}"
    result = evaluate(observations(**change))
    assert not result["checks"][failed_check]
    assert not result["passed"]


def test_a_clear_503_during_the_outage_is_expected() -> None:
    calls = [ApiCall(1000.0, 0.1, "/api/v1/posts", 503, '{"error":{"code":"unavailable"}}')]
    result = evaluate(observations(calls=calls, db_outage=(999.0, 1005.0)))
    assert result["checks"]["API: outage answered 503 with a clear body"]
    assert result["checks"]["API: no 5xx or failed request outside the outage"]
    assert result["api"]["outage_503"] == 1


@pytest.mark.timeout(1200)
def test_short_soak_loses_nothing_under_load_and_faults(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, "-m", "bench.soak.run", "--minutes", "3", "--report", str(report)],
                          capture_output=True, text=True, timeout=1100, cwd=ROOT)
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-4000:]}"
    result = json.loads(report.read_text())
    assert result["passed"] and result["posts"]["published"] > 50, result["posts"]
    assert result["api"]["requests_in_outage"] > 0, "the load ran through the database outage"
