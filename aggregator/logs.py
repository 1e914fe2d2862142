"""Structured logs: an event name plus key=value fields, one line each (or JSON lines)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from aggregator.errors import DatabaseUnavailable, first_line
from aggregator.sources.urls import redact_text


class RedactSecrets(logging.Filter):
    """Masks secrets in URLs (a key in the query, credentials) in every line, whoever logs it:
    a fetch error quotes its feed's URL, and a library may quote it too."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


@contextmanager
def failures_logged(logger: logging.Logger, event: str, **fields: object) -> Iterator[None]:
    """For a background job's body: a failure is logged, never raised, and the next run retries.

    The database being away (a restart, a failover) is expected in a long-running service, so it is
    one warning line; anything else is a bug and carries its traceback.
    """
    context = "".join(f" {key}={value}" for key, value in fields.items())
    try:
        yield
    except DatabaseUnavailable as exc:
        logger.warning("%s%s error=%s", event, context, first_line(exc))
    except Exception:
        logger.exception("%s%s", event, context)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pgserver", "httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
