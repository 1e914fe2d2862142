"""The web entry points as real processes, started the way the CLI starts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support.network import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class WebProcess:
    port: int
    pid: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@contextmanager
def web_process(entry: str, env: Mapping[str, str]) -> Iterator[WebProcess]:
    """`aggregator.runtime.<entry>(load_settings())` in its own process, yielded once /readyz answers.

    Leaving the block sends SIGTERM, which must end it with status 0 (a clean shutdown is part of
    what the callers test); a process still there after a failure is killed."""
    port = free_port()
    code = ("from aggregator.config import load_settings; from aggregator import runtime; "
            f"raise SystemExit(runtime.{entry}(load_settings()))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={
        **os.environ, **env, "AGGREGATOR_HTTP_PORT": str(port), "AGGREGATOR_LOG_LEVEL": "WARNING"})
    try:
        found = WebProcess(port, proc.pid)
        wait_for(lambda: proc.poll() is not None or get_json(f"{found.base}/readyz"), 60,
                 what=f"{entry} to answer /readyz")
        assert proc.poll() is None, f"{entry} exited with status {proc.returncode}"
        yield found
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def web_children(server_pid: int) -> list[psutil.Process]:
    """The web processes a server of several spawned, as the process table shows them."""
    children = []
    for child in psutil.Process(server_pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                children.append(child)
        except psutil.Error:  # a process just killed (a zombie until the server reaps it)
            continue
    return children
