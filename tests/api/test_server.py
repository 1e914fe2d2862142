"""The entry points the CLI calls, as real processes: `serve` (web only) and `run_with_worker`
(scheduler + web), configured from the environment like the command is, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aggregator.db import Database
from tests.api.conftest import DATA, truncate
from tests.support.feedserver import FeedServer

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(entry: str, env: dict[str, str]) -> Iterator[str]:
    """Run aggregator.web.server.<entry>(load_settings()) in its own process; yield its base URL."""
    port = free_port()
    code = f"from aggregator.config import load_settings; from aggregator.web import server; " \
           f"raise SystemExit(server.{entry}(load_settings()))"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={
        **os.environ, **env, "AGGREGATOR_HTTP_PORT": str(port), "AGGREGATOR_LOG_LEVEL": "WARNING"})
    try:
        yield f"http://127.0.0.1:{port}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for(check: Callable[[], object], seconds: float = 30.0) -> object:
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.1)


def get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_and_stops_on_sigterm(database_url: str, db: Database, tmp_path: Path, workers: str) -> None:
    env = {"DATABASE_URL": database_url, "AGGREGATOR_FEEDS_FILE": str(tmp_path / "none.yaml"),
           "AGGREGATOR_HTTP_WORKERS": workers}
    with process("serve", env) as base:
        assert wait_for(lambda: get(f"{base}/readyz"))["status"] == "ready"  # type: ignore[index]
        assert get(f"{base}/api/v1/posts")["items"] == []


def test_run_polls_the_feeds_file_and_serves_what_it_stored(database_url: str, db: Database, tmp_path: Path,
                                                            feed_server: FeedServer) -> None:
    truncate(db)
    feed_server.serve("/kabul.rss", (DATA / "kabul_wire.rss").read_bytes())
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {feed_server.url('/kabul.rss')}\n    name: Kabul Wire\n")
    env = {"DATABASE_URL": database_url, "AGGREGATOR_FEEDS_FILE": str(feeds), "AGGREGATOR_TICK_SECONDS": "0.2",
           "AGGREGATOR_ALLOW_PRIVATE_NETWORKS": "true", "AGGREGATOR_PARSE_PROCESSES": "1"}
    with process("run_with_worker", env) as base:
        page = wait_for(lambda: get(f"{base}/api/v1/posts?country=AF")["items"])
        assert len(page) >= 4  # type: ignore[arg-type]
        [source] = get(f"{base}/api/v1/sources")  # type: ignore[misc]
        assert source["name"] == "Kabul Wire" and source["last_success"]
