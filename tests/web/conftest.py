"""The web reader under test: a real server on 127.0.0.1 over a seeded database, and a real browser.

The database is seeded through the real pipeline (feed server -> worker -> fetch, parse, tag, store):
the API fixtures' feeds, plus a generated feed of ninety days of posts about Kazakhstan with one busy
day, so the trend chart has a series and a surge to draw. The browser is Chromium driven by
Playwright; `CHROMIUM` names its executable (default: the distribution's chromium). Without one the
browser tests skip, except in CI (CI=true), where they must run.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import psycopg
import pytest
import uvicorn

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.runtime import build_web_app
from aggregator.web.rollup import refresh_once
from tests.api.conftest import DATA, FEEDS, api_settings
from tests.support.database import fresh_database
from tests.support.feedserver import FeedServer
from tests.support.network import free_port, wait_for
from tests.support.polling import serve_and_poll

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
SURGE_DAYS_AGO = 5
TOPIC_LINES = [
    ("Kazakhstan border guards detain armed militants near the Kyrgyz frontier",
     "Border guards of Kazakhstan said they detained an armed group crossing illegally from Kyrgyzstan."),
    ("Astana hosts joint military exercises with Russia",
     "Kazakhstan and Russia began joint military exercises near Almaty, the defence ministry said."),
    ("Kazakh court jails former official for corruption",
     "A court in Kazakhstan sentenced a former deputy minister to eight years for taking bribes."),
    ("Kazakhstan security service reports cyber attack on state agencies",
     "The National Security Committee of Kazakhstan said hackers attacked government websites."),
]


def trend_feed(now: datetime) -> bytes:
    """Ninety days of posts about Kazakhstan, one or two a day, and ten on one day: the surge."""
    items = []
    for days_ago in range(90):
        day = (now - timedelta(days=days_ago)).replace(hour=9, minute=0, second=0, microsecond=0)
        per_day = 10 if days_ago == SURGE_DAYS_AGO else 1 + days_ago % 2
        for n in range(per_day):
            title, text = TOPIC_LINES[(days_ago + n) % len(TOPIC_LINES)]
            when = day + timedelta(minutes=7 * n)
            items.append(f"<item><title>{escape(title)} ({days_ago}-{n})</title>"
                         f"<link>https://steppe.example/{days_ago}/{n}</link><guid>https://steppe.example/{days_ago}/{n}</guid>"
                         f"<pubDate>{format_datetime(when)}</pubDate><description>{escape(text)}</description></item>")
    return ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Steppe Daily</title>"
            f"<link>https://steppe.example/</link>{''.join(items)}</channel></rss>").encode()


@dataclass
class LiveSite:
    base: str
    db: Database
    settings: Settings
    extra: dict[str, Any] = field(default_factory=dict)


class ServerThread:
    """uvicorn serving an app in a thread of this process, on a free port."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                   access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="test-web", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        wait_for(lambda: self.server.started, 30, what="the web server to start")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def admin_url(database_url: str) -> str:
    return psycopg.conninfo.make_conninfo(database_url, dbname="postgres")


@pytest.fixture(scope="module")
def site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    """A database of its own (browser tests run long; the per-test truncation of `db` is not for them)."""
    with fresh_database(admin_url(database_url), prefix="aggregator_web") as url:
        settings = api_settings(url, tmp_path_factory.mktemp("web"), fetch_concurrency=4)
        with Database(url, max_size=8) as db, FeedServer() as feeds:
            app = build_web_app(settings, db)  # loads the taxonomy before the worker's threads want it
            bodies = {path: (DATA / name).read_bytes() for path, name in FEEDS.items()}
            bodies["/steppe-daily.rss"] = trend_feed(datetime.now(UTC))
            outcomes = serve_and_poll(db, settings, feeds, bodies)
            assert all(o.outcome == "ok" for o in outcomes.values()), [o.describe() for o in outcomes.values()]
            refresh_once(db)
            with ServerThread(app) as base:
                yield LiveSite(base, db, settings)


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium: .ci/run installs the chromium package; browser tests must run in CI")
        pytest.skip("no Chromium on this machine (install the chromium package, or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield instance
        instance.close()
