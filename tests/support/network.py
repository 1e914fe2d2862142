"""Ports and waiting: what every test and benchmark that runs a server needs."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; a server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T], timeout: float, *, interval: float = 0.05,
               tolerate: tuple[type[BaseException], ...] = (OSError,)) -> T | None:
    """Poll `condition` until it returns something truthy (returned) or the deadline passes (None).

    Errors of the `tolerate` kinds count as "not yet": the thing polled may be starting or down
    for a moment, which is what the caller waits out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wait_for(condition: Callable[[], T], timeout: float = 30.0, *, what: str = "the condition",
             interval: float = 0.05, tolerate: tuple[type[BaseException], ...] = (OSError,)) -> T:
    """As wait_until, but a deadline passed is a test failure that says what was awaited."""
    value = wait_until(condition, timeout, interval=interval, tolerate=tolerate)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return value
