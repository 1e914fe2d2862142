"""Waiting for a child process without letting a hung one outlive its test.

`Popen.communicate(timeout=...)` raises on timeout but leaves the child running: a hung
`aggregator poll` then keeps its transaction and its locks, and every later test that empties
those tables waits behind it. Here a timeout kills the child and its descendants (parse
processes, a fork server) before the test fails.
"""

from __future__ import annotations

import contextlib
import subprocess

import psutil
import pytest

from tests.support.network import wait_for


def kill_tree(proc: subprocess.Popen[str]) -> None:
    """Kill a process and everything it started, and reap it."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    proc.kill()
    proc.communicate()
    # SIGKILL is delivered asynchronously: right after kill() a busy descendant can still show as
    # running. An orphan may stay a zombie when nothing reaps it; that counts as ended.
    wait_for(lambda: all(_ended(child) for child in children), 10, what="the killed descendants to end",
             interval=0.02)


def _ended(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def finish(proc: subprocess.Popen[str], timeout: float, *, what: str) -> tuple[str, str]:
    """(stdout, stderr) of a child that must end within `timeout` seconds; fails the test if not."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        pytest.fail(f"{what} did not finish within {timeout:g} s; it was killed")
