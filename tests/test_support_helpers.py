"""The test helpers that guard the suite against one stuck test taking the rest down."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import psutil
import psycopg
import pytest

from aggregator.db import Database
from tests.support.database import reset
from tests.support.network import wait_for
from tests.support.processes import finish


def test_reset_ends_a_session_that_holds_the_tables(db: Database, database_url: str) -> None:
    stuck = psycopg.connect(database_url)  # a transaction left open, as by a killed client
    stuck.execute("INSERT INTO sources (url, poll_interval) VALUES ('https://example.org/f', 3600)")
    blocker = stuck.info.backend_pid
    started = time.monotonic()
    with db.connection() as conn:
        reset(conn, "ingest", patience="1s")
        assert conn.execute("SELECT count(*) FROM sources").fetchone() == (0,)
    assert time.monotonic() - started < 10
    with db.connection() as conn:
        alive = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [blocker]).fetchone()
    assert alive == (0,)
    with pytest.raises(psycopg.OperationalError):
        stuck.execute("SELECT 1")
    stuck.close()


def test_a_child_that_overruns_is_killed_with_its_children() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time;"
         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    grandchild = wait_for(lambda: psutil.Process(proc.pid).children(), 10, what="the grandchild")[0]
    with pytest.raises(pytest.fail.Exception, match=re.escape("did not finish within 0.5 s")):
        finish(proc, 0.5, what="a sleeper")
    assert proc.returncode is not None
    assert not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE
