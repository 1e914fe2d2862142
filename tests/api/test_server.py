"""The entry points the CLI calls, as real processes: `run_web` (web only) and `run_all`
(scheduler + web), configured from the environment like the command is, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from aggregator.db import Database
from tests.api.conftest import DATA, truncate
from tests.support.feedserver import FeedServer
from tests.support.network import free_port, wait_for
from tests.support.webserver import get_json as get
from tests.support.webserver import web_children, web_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_and_stops_on_sigterm(database_url: str, db: Database, tmp_path: Path, workers: str) -> None:
    env = {"DATABASE_URL": database_url, "AGGREGATOR_FEEDS_FILE": str(tmp_path / "none.yaml"),
           "AGGREGATOR_HTTP_WORKERS": workers}
    with web_process("run_web", env) as web:
        assert get(f"{web.base}/readyz")["status"] == "ready"
        assert get(f"{web.base}/api/v1/posts")["items"] == []


def test_run_polls_the_feeds_file_and_serves_what_it_stored(database_url: str, db: Database, tmp_path: Path,
                                                            feed_server: FeedServer) -> None:
    truncate(db)
    feed_server.serve("/kabul.rss", (DATA / "kabul_wire.rss").read_bytes())
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {feed_server.url('/kabul.rss')}\n    name: Kabul Wire\n")
    env = {"DATABASE_URL": database_url, "AGGREGATOR_FEEDS_FILE": str(feeds), "AGGREGATOR_TICK_SECONDS": "0.2",
           "AGGREGATOR_ALLOW_PRIVATE_NETWORKS": "true", "AGGREGATOR_PARSE_PROCESSES": "1"}
    with web_process("run_all", env) as web:
        base = web.base
        page = wait_for(lambda: get(f"{base}/api/v1/posts?country=AF")["items"])
        assert len(page) >= 4  # type: ignore[arg-type]
        [source] = get(f"{base}/api/v1/sources")  # type: ignore[misc]
        assert source["name"] == "Kabul Wire" and source["last_success"]


def command_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an `aggregator` command: no database named (the embedded one would start)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_") and k != "DATABASE_URL"}
    return {**env, "AGGREGATOR_DATA_DIR": str(tmp_path / "var"), "AGGREGATOR_LOG_LEVEL": "WARNING", **extra}


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_port_in_use_fails_at_once_before_anything_starts(tmp_path: Path, feed_server: FeedServer,
                                                            command: str) -> None:
    feed_server.serve("/kabul.rss", (DATA / "kabul_wire.rss").read_bytes())
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {feed_server.url('/kabul.rss')}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = command_env(tmp_path, AGGREGATOR_HTTP_PORT=str(port), AGGREGATOR_FEEDS_FILE=str(feeds),
                          AGGREGATOR_ALLOW_PRIVATE_NETWORKS="true", AGGREGATOR_TICK_SECONDS="0.1")
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "aggregator", command], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert f"port {port} is in use" in line and "AGGREGATOR_HTTP_PORT" in line and "--port" in line
    assert elapsed < 2.0, elapsed  # the interpreter's start-up included
    assert not (tmp_path / "var").exists()  # no embedded database was started
    assert feed_server.requests.for_path("/kabul.rss") == []  # nothing was polled


def test_host_and_port_flags_win_over_the_environment(database_url: str, db: Database, tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:  # the environment names a port in use: only the flag makes it start
        taken.bind(("127.0.0.1", 0))
        env = command_env(tmp_path, DATABASE_URL=database_url, AGGREGATOR_HTTP_HOST="256.0.0.1",
                          AGGREGATOR_HTTP_PORT=str(taken.getsockname()[1]))
        proc = subprocess.Popen([sys.executable, "-m", "aggregator", "serve", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=tmp_path, env=env)
        try:
            assert wait_for(lambda: proc.poll() is not None or get(f"http://127.0.0.1:{port}/readyz"))
            assert proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    done = subprocess.run([sys.executable, "-m", "aggregator", "serve", "--port", "70000"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a port number" in done.stderr


@pytest.mark.parametrize(("setting", "cores", "expected"), [
    (0, 1, 1), (0, 2, 2), (0, 64, 4),  # one per core, bounded by the connections each holds
    (1, 8, 1), (6, 2, 6),  # a number set is taken as it is
])
def test_web_processes_default_to_one_per_core(setting: int, cores: int, expected: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.config import load_settings
    from aggregator.runtime import web_processes

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert web_processes(load_settings(http_workers=setting)) == expected


@pytest.mark.parametrize(("setting", "processes", "expected"), [
    (0, 1, 4),  # a process serving alone overlaps a request's database wait with another's rendering
    (0, 2, 1), (0, 4, 1),  # processes overlap one another's waits: more threads only contend
    (3, 1, 3), (3, 2, 3),  # a number set is taken as it is
])
def test_request_threads_per_web_process(setting: int, processes: int, expected: int) -> None:
    from aggregator.config import request_threads

    assert request_threads(setting, processes) == expected


def _connections_by_process(web_pid: int, port: int) -> dict[int, int]:
    """Established connections on `port` held by each web process of the server `web_pid` started."""
    counts = {}
    for child in web_children(web_pid):
        try:
            counts[child.pid] = sum(1 for c in child.net_connections("tcp")
                                    if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)
        except psutil.Error:  # killed since it was listed
            continue
    return counts


def test_keep_alive_clients_end_evenly_spread_over_the_web_processes(database_url: str, db: Database,
                                                                     tmp_path: Path) -> None:
    """Sixty clients, each keeping its connection. The kernel spreads new connections over the
    processes' sockets at random (32/28 or worse nine times in ten); a process over its share closes
    a connection after an answer, the client reconnects, and within a few rounds the split is even."""
    import http.client

    env = {"DATABASE_URL": database_url, "AGGREGATOR_FEEDS_FILE": str(tmp_path / "none.yaml"),
           "AGGREGATOR_HTTP_WORKERS": "2"}
    with web_process("run_web", env) as web:
        clients = [http.client.HTTPConnection("127.0.0.1", web.port, timeout=30) for _ in range(60)]
        try:
            closed = []
            for _ in range(30):  # rounds: each client asks once (reconnecting if it was let go)
                closed.append(0)
                for client in clients:
                    client.request("GET", "/healthz")
                    response = client.getresponse()
                    response.read()
                    assert response.status == 200
                    closed[-1] += response.getheader("connection", "").lower() == "close"
                if not closed[-1]:
                    break
            assert not closed[-1], f"connections still closed in every round: {closed}"
            counts = _connections_by_process(web.pid, web.port)
            assert sorted(counts.values()) == [30, 30], (counts, closed)
        finally:
            for client in clients:
                client.close()


def test_a_web_process_that_dies_is_replaced_on_its_socket(database_url: str, db: Database, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "AGGREGATOR_FEEDS_FILE": str(tmp_path / "none.yaml"),
           "AGGREGATOR_HTTP_WORKERS": "2"}
    with web_process("run_web", env) as web:
        victim = min(_connections_by_process(web.pid, web.port))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(set(_connections_by_process(web.pid, web.port)) - {victim}) == 2, 30,
                 what="a replacement web process")
        for _ in range(20):  # new connections, hashed over both sockets: all answered, those on the
            # replacement's socket once it has started (they wait in its queue: seconds on a busy machine)
            with urllib.request.urlopen(f"{web.base}/readyz", timeout=60) as response:
                assert response.status == 200


def running(pid: int) -> bool:
    """Whether the process runs (a child that exited stays a zombie until it is waited for)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_replacement_that_cannot_reach_the_database_is_tried_again_until_it_can(
        database_url: str, db: Database, tmp_path: Path) -> None:
    """A web process dies while the database is away: its replacement cannot start, which must not
    stop serve (the other process serves on) and must not be the end of it: once the database is
    back, a replacement starts and answers."""
    from tests.support.tcpproxy import DatabaseProxy

    with DatabaseProxy(database_url) as proxy:
        env = {"DATABASE_URL": proxy.url, "AGGREGATOR_FEEDS_FILE": str(tmp_path / "none.yaml"),
               "AGGREGATOR_HTTP_WORKERS": "2", "AGGREGATOR_DB_START_SECONDS": "1"}
        with web_process("run_web", env) as web:
            first = {p.pid for p in web_children(web.pid)}
            assert len(first) == 2
            proxy.cut()
            os.kill(min(first), signal.SIGKILL)
            seen: set[int] = set()

            def replacements_failed() -> bool:
                assert running(web.pid), "serve stopped"
                now = {p.pid for p in web_children(web.pid)} - first
                seen.update(now)
                return len(seen - now) >= 2  # two replacements came and went

            wait_for(replacements_failed, 60, what="two replacements that could not start")
            assert max(first) in {p.pid for p in web_children(web.pid)}, "the other process serves on"
            proxy.restore()

            def both_answer() -> bool:  # new connections, hashed over both sockets
                try:
                    for _ in range(20):
                        with urllib.request.urlopen(f"{web.base}/readyz", timeout=30) as response:
                            if response.status != 200:
                                return False
                except OSError:  # 503 while the survivor's pool reconnects; a socket nobody serves
                    return False
                return True

            wait_for(both_answer, 120, what="a replacement that starts once the database is back")
            assert running(web.pid)


@pytest.mark.timeout(90)  # restarted forever, serve never returns
def test_a_web_process_that_cannot_start_stops_serve_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its app cannot be built (here: no database where it was pointed), so it would fail again on
    every restart: serve must stop with an error instead of restarting it forever."""
    from aggregator.config import load_settings
    from aggregator.errors import ConfigError
    from aggregator.runtime import PARENT_PID_VARIABLE, _bound, _serve_processes, listen_each

    # serve hands its processes their settings through the environment: restored after the test
    for name in ("DATABASE_URL", "AGGREGATOR_HTTP_HOST", "AGGREGATOR_HTTP_PORT", "AGGREGATOR_HTTP_THREADS",
                 PARENT_PID_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGGREGATOR_DB_START_SECONDS", "2")  # how long a process waits for its database
    settings = load_settings(http_host="127.0.0.1", http_workers=2)
    sockets = listen_each(settings, _bound("127.0.0.1", free_port()), 2)
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=2"
    started = time.monotonic()
    try:
        with pytest.raises(ConfigError, match="a web process could not start"):
            _serve_processes(settings, nowhere, sockets)
    finally:
        for sock in sockets:
            sock.close()
    assert time.monotonic() - started < 30
