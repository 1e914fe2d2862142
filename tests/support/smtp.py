"""A real SMTP server for tests and benchmarks (aiosmtpd on 127.0.0.1): records what it accepts
(or only counts it, for a benchmark's thousands of messages), can refuse a recipient with 550 (a
hard bounce) or everything with 451, can be taken down and brought back on the same port
(connection refused in between), and offers SMTPUTF8 or not."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.network import free_port, wait_until


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.sink.hard_bounce:
            return f"550 5.1.1 <{address}>: no such user"
        if self.sink.busy:
            return "451 4.3.2 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sink.add(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 2.0.0 accepted"


class SmtpSink:
    def __init__(self, port: int = 0, *, keep: bool = True, smtputf8: bool = True) -> None:
        """`keep=False` only counts messages and bytes (a benchmark's volume would fill memory);
        `smtputf8`: offer SMTPUTF8 (RFC 6531) in the EHLO answer, as most servers do."""
        self.smtputf8 = smtputf8
        self.port = port or free_port()
        self.keep = keep
        self.hard_bounce: set[str] = set()
        self.busy = False
        self.messages = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, decode_data=False,
                                      enable_SMTPUTF8=self.smtputf8)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> None:
        """Down and up again on the same port, keeping what was received."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def add(self, item: Received) -> None:
        with self._lock:
            self.messages += 1
            self.bytes += len(item.data)
            if self.keep:
                self._received.append(item)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if address in r.rcpt_tos]

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        """Poll until `condition(received)` holds (mail arrives on the server's own thread)."""
        met: list[list[Received]] = []

        def check() -> bool:
            got = self.received
            if condition(got):
                met.append(got)
            return bool(met)

        if not wait_until(check, timeout, interval=0.02):
            raise AssertionError(f"SMTP sink: condition not met in {timeout}s; received {self.messages} message(s)")
        return met[0]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A running sink for the test (a fixture, registered in tests/conftest.py)."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()
