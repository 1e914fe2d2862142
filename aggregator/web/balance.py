"""Keep-alive connections spread evenly over `serve`'s web processes.

The kernel hands each new connection to one process's socket at random (SO_REUSEPORT), and a client
that keeps its connection (a browser, a proxy's pool, a load generator) stays with that process. Two
processes given twenty such connections split them 14/6 or 13/7 about as often as 10/10, and the
process holding fourteen answers each of them more slowly than the other answers its six: with one
request served at a time in a process, a connection waits for every other one the process holds.
So the tail latency of every page was decided by a coin toss at connect time.

Each process writes how many connections it holds into a slot of an array shared with the others.
One holding more than its share answers a request with `Connection: close`; the client opens a new
connection, which the kernel places anew, and the split converges to even within a few requests.
A closed connection costs the client one reconnection (a fraction of a millisecond on a network
where the service answers in tens of them); nothing is lost, as the answer is whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableSequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ABSENT = -1  # the count of a slot whose process is not serving (starting, or ended): not one to share with


def over_share(mine: int, total: int, processes: int) -> bool:
    """More connections than an even split allows (rounding up, so an odd one out stays)."""
    return processes > 1 and mine > -(-total // processes)


class Shares:
    """This process's slot in the counts `serve` shares with its web processes (one int each).

    Requests are let in as they arrive, before a thread is free to answer them, so fourteen queued
    requests of fourteen connections would each see fourteen held and all be closed: the connections
    already told to close are not counted as held, though they are in the total to share: they come
    back, to one process or another. They are known by their peer address, which uvicorn's
    connections give too."""

    def __init__(self, counts: MutableSequence[int], index: int) -> None:
        self.counts = counts
        self.index = index
        self.peers: Callable[[], Iterable[object]] = tuple  # set once the server holding the connections exists
        self.leaving: set[object] = set()

    def over(self, peer: object) -> bool:
        """Whether the connection of `peer` is to be closed after this answer."""
        held = set(self.peers())
        self.leaving &= held
        if peer in self.leaving:
            return True
        mine = len(held) - len(self.leaving)
        self.counts[self.index] = mine
        serving = [n for n in self.counts if n != ABSENT]
        # those let go come back, to one process or another: the share is of all
        total = sum(serving) + len(self.leaving)
        if peer is None or not over_share(mine, total, len(serving)):
            return False
        self.leaving.add(peer)
        self.counts[self.index] = mine - 1
        return True


class ConnectionBalance:
    """Outermost middleware of a web process of several (outside uvicorn's proxy headers, so the
    client it sees is the connection's peer): sheds a connection while over its share."""

    def __init__(self, app: ASGIApp, shares: Shares) -> None:
        self.app = app
        self.shares = shares

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _closes_anyway(scope) or not self.shares.over(scope.get("client")):
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, closing)


def _closes_anyway(scope: Scope) -> bool:
    """A request whose connection ends with its answer (HTTP/1.0, or asked so): nothing to move."""
    return scope.get("http_version") == "1.0" or any(
        name == b"connection" and b"close" in value.lower() for name, value in scope.get("headers", ()))
