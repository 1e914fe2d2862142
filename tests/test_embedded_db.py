"""The embedded PostgreSQL never outlives the aggregator processes that use it.

Real commands in real processes, each with its own data folder (so its own embedded server), ended
by SIGTERM, SIGINT or SIGKILL; the process table (psutil) says what is left. Every process a test
starts is killed at its end, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.feedserver import FeedServer
from tests.support.network import free_port, wait_for
from tests.support.webserver import web_children

pytestmark = pytest.mark.slow


class Folder:
    """One data folder, the commands run on it, and what runs for it in the process table."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.pgdata = self.root / "var" / "pgdata"
        self.started: list[subprocess.Popen[str]] = []
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("AGGREGATOR_") and k not in ("DATABASE_URL", "PYTHONPATH")}
        self.env.update({
            "AGGREGATOR_DATA_DIR": str(self.root / "var"),
            "AGGREGATOR_FEEDS_FILE": str(self.root / "feeds.yaml"),  # absent: nothing to sync
            "AGGREGATOR_PARSE_PROCESSES": "1",
            "AGGREGATOR_ALLOW_PRIVATE_NETWORKS": "true",
            "AGGREGATOR_FETCH_DEADLINE": "20",
            "AGGREGATOR_LOG_LEVEL": "WARNING",
        })

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "aggregator", *args], cwd=self.root, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started.append(proc)
        return proc

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aggregator", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def servers(self) -> list[psutil.Process]:
        """Postmasters running on this folder's data."""
        return [p for p in _processes() if p.info["name"] == "postgres" and str(self.pgdata) in p.info["cmdline"]]

    def watchdogs(self) -> list[psutil.Process]:
        return [p for p in _processes() if any(a.endswith("embedded.py") for a in p.info["cmdline"])
                and str(self.pgdata) in p.info["cmdline"]]

    def users(self) -> list[int]:
        """pgserver's list of users. It is rewritten in place as processes join and leave (the watchdog
        forgets dead ones at any moment), so a read can find it empty for an instant: read it again."""
        path = self.pgdata / ".handle_pids.json"

        def read() -> tuple[list[int]]:  # in a tuple: an empty list is an answer too
            return (json.loads(path.read_text()) if path.exists() else [],)

        return wait_for(read, 5, what="a whole list of users", tolerate=(OSError, ValueError))[0]

    def kill_everything(self) -> None:
        """Whatever runs for this folder (commands, server, watchdog), killed and reaped."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        left = [p for p in _processes() if any(str(self.root) in a for a in p.info["cmdline"])]
        for process in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(left, timeout=10)


def _processes() -> Iterator[psutil.Process]:
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["cmdline"]:
            yield process


@pytest.fixture
def folder() -> Iterator[Folder]:
    """Not in pytest's folder: as root, the server runs as another user, who must be able to reach
    its data, and a concurrent pytest session makes pytest's base folder private again."""
    root = Path(tempfile.mkdtemp(prefix="aggregator-test-embedded-"))
    data = Folder(root)
    try:
        yield data
    finally:
        data.kill_everything()
        shutil.rmtree(root, ignore_errors=True)


def ready(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
        return response.status == 200


def finished(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """(exit status, standard error) of a process that is ending."""
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def start_backfill(folder: Folder, feed_server: FeedServer) -> subprocess.Popen[str]:
    """A one-shot command caught in the middle of its work: a fetch that never completes."""
    feed_server.slow("/slow", in_headers=True)
    proc = folder.start("backfill", feed_server.url("/slow"), "--quiet")
    wait_for(lambda: feed_server.requests.for_path("/slow") or proc.poll() is not None, 20, what="backfill fetching")
    assert proc.poll() is None, proc.communicate()
    return proc


def start_serve(folder: Folder) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = folder.start("serve", "--port", str(port))
    wait_for(lambda: proc.poll() is not None or ready(port), 20, what="serve ready")
    assert proc.poll() is None, proc.communicate()
    return proc, port


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_command_ended_by_a_signal_stops_the_server_on_its_way_out(
        folder: Folder, feed_server: FeedServer, sig: signal.Signals, status: int) -> None:
    proc = start_backfill(folder, feed_server)
    assert len(folder.servers()) == 1 and folder.users() == [proc.pid]
    proc.send_signal(sig)
    code, err = finished(proc)
    assert code == status and "Traceback" not in err, err  # ended through its exit path, not killed
    assert folder.servers() == [] and folder.users() == []  # stopped by the process itself, at once
    wait_for(lambda: not folder.watchdogs(), 5, what="the watchdog leaves")


def test_serve_ended_by_sigterm_stops_the_server(folder: Folder) -> None:
    proc, _ = start_serve(folder)
    proc.send_signal(signal.SIGTERM)
    assert finished(proc)[0] == 0
    assert folder.servers() == []
    wait_for(lambda: not folder.watchdogs(), 5, what="the watchdog leaves")


@pytest.mark.parametrize("command", ["backfill", "serve"])
def test_the_last_user_killed_outright_still_stops_the_server(
        folder: Folder, feed_server: FeedServer, command: str) -> None:
    proc = start_backfill(folder, feed_server) if command == "backfill" else start_serve(folder)[0]
    [watchdog] = folder.watchdogs()
    proc.kill()
    proc.wait()
    wait_for(lambda: not folder.servers(), 10, what="the orphaned server stopped")
    psutil.wait_procs([watchdog], timeout=5)
    assert not watchdog.is_running()


def test_web_processes_stop_when_serve_is_killed_outright(folder: Folder) -> None:
    folder.env["AGGREGATOR_HTTP_WORKERS"] = "2"
    proc, port = start_serve(folder)
    workers = web_children(proc.pid)
    assert len(workers) == 2, [p.cmdline() for p in psutil.Process(proc.pid).children()]
    proc.kill()
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"web processes serving on after their parent was killed: {alive}"
    with pytest.raises(OSError):
        ready(port)


def test_a_killed_user_does_not_stop_the_server_of_the_live_ones(folder: Folder, feed_server: FeedServer) -> None:
    serve, port = start_serve(folder)
    backfill = start_backfill(folder, feed_server)
    assert sorted(folder.users()) == sorted([serve.pid, backfill.pid])
    backfill.kill()
    backfill.wait()
    wait_for(lambda: folder.users() == [serve.pid], 10, what="the dead user forgotten")  # by the watchdog
    assert len(folder.servers()) == 1 and ready(port)
    serve.send_signal(signal.SIGTERM)
    assert finished(serve)[0] == 0
    assert folder.servers() == []


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_user_left_by_an_earlier_run_is_forgotten_at_the_next_start(folder: Folder) -> None:
    assert folder.run("migrate").returncode == 0  # creates the server's data folder, then stops it
    assert folder.servers() == []
    stale = dead_pid()
    (folder.pgdata / ".handle_pids.json").write_text(json.dumps([stale]))  # what a killed process leaves
    done = folder.run("migrate")
    assert done.returncode == 0, done.stderr
    assert folder.servers() == [] and folder.users() == []  # the command was the last user, and knew it


def test_db_stop(folder: Folder) -> None:
    done = folder.run("db", "stop")
    assert done.returncode == 0 and "no embedded PostgreSQL is running" in done.stdout

    # An orphan as earlier versions left it: running, its list naming a process that is gone.
    assert folder.run("migrate").returncode == 0
    wait_for(lambda: not folder.watchdogs(), 5, what="the watchdog leaves")  # else it would stop the orphan itself
    subprocess.run([sys.executable, "-c", "import sys, pgserver; pgserver.get_server(sys.argv[1], cleanup_mode=None)",
                    str(folder.pgdata)], check=True, env=folder.env, capture_output=True, timeout=60)
    (folder.pgdata / ".handle_pids.json").write_text(json.dumps([dead_pid()]))
    assert len(folder.servers()) == 1
    done = folder.run("db", "stop")
    assert done.returncode == 0 and f"stopped the embedded PostgreSQL in {folder.pgdata}" in done.stdout
    assert folder.servers() == []

    serve, _ = start_serve(folder)
    done = folder.run("db", "stop")
    assert done.returncode == 1 and f"pid {serve.pid}" in done.stderr and "--force" in done.stderr
    assert len(folder.servers()) == 1
    done = folder.run("db", "stop", "--force")
    assert done.returncode == 0 and "stopped" in done.stdout
    assert folder.servers() == []
    serve.send_signal(signal.SIGTERM)
    finished(serve)
