"""How a web process decides to let a connection go (web/balance.py), table-driven; the processes
themselves are tested in test_server.py."""

from __future__ import annotations

import pytest

from aggregator.web.balance import ABSENT, Shares, _closes_anyway, over_share


@pytest.mark.parametrize(("mine", "total", "processes", "over"), [
    (10, 20, 2, False), (11, 20, 2, True), (14, 20, 2, True),
    (11, 21, 2, False), (12, 21, 2, True),  # the odd one out stays where it is
    (1, 1, 2, False), (2, 2, 2, True), (0, 0, 2, False),
    (5, 15, 3, False), (6, 15, 3, True), (6, 16, 3, False),
    (40, 40, 1, False),  # a process alone has no other to hand a connection to
])
def test_over_share(mine: int, total: int, processes: int, over: bool) -> None:
    assert over_share(mine, total, processes) is over


def test_queued_requests_let_go_only_the_excess() -> None:
    """Fourteen connections' requests arrive before any is answered: four are let go, not fourteen,
    and a connection already let go is let go again (it has not closed yet) without counting twice."""
    counts = [0, 6]
    shares = Shares(counts, 0)
    peers = [("127.0.0.1", 40000 + n) for n in range(14)]
    shares.peers = lambda: peers
    decisions = [shares.over(peer) for peer in peers]
    assert decisions == [True] * 4 + [False] * 10
    assert counts == [10, 6]
    assert shares.over(peers[2]) is True and counts == [10, 6]
    del peers[:4]  # the four closed and came back on the other process's socket: none is remembered
    counts[1] = 10
    assert shares.over(peers[0]) is False and shares.leaving == set() and counts == [10, 10]


def test_a_request_without_a_peer_is_never_let_go() -> None:
    shares = Shares([0, 0], 0)
    shares.peers = lambda: [("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)]
    assert shares.over(None) is False


def test_a_process_not_serving_is_not_shared_with() -> None:
    """A slot whose process is starting or has ended holds no connections and takes none: its
    neighbour keeps its clients rather than sending half of them to a queue nobody answers."""
    shares = Shares([0, ABSENT], 0)
    shares.peers = lambda: [("127.0.0.1", 40000 + n) for n in range(10)]
    assert not any(shares.over(("127.0.0.1", 40000 + n)) for n in range(10))
    shares.counts[1] = 0  # the replacement serves: half go
    assert [shares.over(("127.0.0.1", 40000 + n)) for n in range(10)].count(True) == 5


@pytest.mark.parametrize(("version", "headers", "closes"), [
    ("1.1", [], False), ("1.1", [(b"connection", b"keep-alive")], False),
    ("1.1", [(b"connection", b"Close")], True), ("1.0", [], True),
])
def test_a_connection_that_ends_anyway_is_not_picked(version: str, headers: list[tuple[bytes, bytes]],
                                                     closes: bool) -> None:
    assert _closes_anyway({"type": "http", "http_version": version, "headers": headers}) is closes
