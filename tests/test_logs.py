"""Background jobs log their failures: the database away is one line, a bug keeps its traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from aggregator import runtime
from aggregator.db import Database
from aggregator.errors import DatabaseUnavailable, StorageError
from aggregator.logs import failures_logged

log = logging.getLogger("tests.logs")


@pytest.mark.parametrize(
    ("raised", "level", "traceback"),
    [
        (DatabaseUnavailable("server closed the connection\nmore detail"), logging.WARNING, False),
        (StorageError("syntax error at or near"), logging.ERROR, True),
        (KeyError("missing"), logging.ERROR, True),
    ],
)
def test_a_failed_job_is_logged_never_raised(caplog: pytest.LogCaptureFixture, raised: Exception, level: int,
                                             traceback: bool) -> None:
    caplog.set_level(logging.INFO, logger="tests.logs")
    with failures_logged(log, "job.failed", name="w1"):
        raise raised
    (record,) = caplog.records
    assert record.levelno == level
    assert record.getMessage().startswith("job.failed name=w1")
    assert (record.exc_info is not None) is traceback
    if not traceback:
        assert "error=server closed the connection" in record.getMessage()
        assert "more detail" not in record.getMessage()


def test_a_job_that_succeeds_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tests.logs")
    with failures_logged(log, "job.failed"):
        pass
    assert caplog.records == []


@pytest.mark.parametrize(("job", "event"), [(runtime._prune_fetch_log_job, "fetch_log"),
                                             (runtime._prune_recent_search_job, "recent_search")])
def test_a_prune_rides_out_a_database_away_without_a_traceback(
        database_url: str, caplog: pytest.LogCaptureFixture, job: Callable[[Database], None], event: str) -> None:
    """The prunes run every few minutes or hours beside the polling; when one meets a database
    restart it must say so in one line, as the tick does, not dump a traceback into the service log."""
    caplog.set_level(logging.INFO, logger="aggregator.runtime")
    with Database(database_url, max_size=1, wait_seconds=0.3) as database:
        with database.connection():  # the only connection is taken: the job cannot get one in time
            job(database)
        failed = [r for r in caplog.records if r.getMessage().startswith(f"{event}.prune_failed")]
        assert len(failed) == 1 and failed[0].exc_info is None and failed[0].levelno == logging.WARNING
        job(database)  # and with the database back, the next run works
        assert any(r.getMessage().startswith(f"{event}.pruned") for r in caplog.records)
