"""A per-client limit on requests (sliding windows), kept in the web process's memory.

It keeps one client from hammering an endpoint that costs something (a subscription request ends
in an email). It is per process: with HTTP_WORKERS processes a client may make up to that many
times the limit, which still bounds it; the limit that must hold whatever the number of processes,
confirmation emails per address, is counted in the database instead.

Memory is bounded whatever the traffic: at most `max_clients` clients are remembered (the least
recently seen are forgotten first, so a flood of distinct addresses costs old entries, not memory),
each with at most as many request times as its largest limit allows.

`decide` is the arithmetic, pure, with `now` a parameter; `ClientLimiter` adds the table and the lock.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

MAX_CLIENTS = 10_000
IPV6_PREFIX = 64  # one IPv6 subscriber line gets a /64: its addresses are one client


@dataclass(frozen=True, slots=True)
class Limit:
    requests: int  # at most this many ... (0: no limit)
    seconds: float  # ... in any window this long


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a request would be allowed; 0 when this one is
    history: tuple[float, ...]  # the client's request times still inside a window, this one included if allowed


def decide(history: Sequence[float], now: float, limits: Sequence[Limit]) -> Decision:
    """Allow the request at `now` when every limit has room, given the times (ascending) of the
    client's earlier allowed requests. A refused request is not counted, so a client that keeps
    knocking is let in again as soon as the oldest counted request leaves the window."""
    live = [limit for limit in limits if limit.requests > 0]
    horizon = max((limit.seconds for limit in live), default=0.0)
    recent = tuple(t for t in history if t > now - horizon)
    wait = 0.0
    for limit in live:
        inside = [t for t in recent if t > now - limit.seconds]
        if len(inside) >= limit.requests:  # room again when enough of them have left the window
            wait = max(wait, inside[len(inside) - limit.requests] + limit.seconds - now)
    if wait > 0:
        return Decision(False, wait, recent)
    return Decision(True, 0.0, (*recent, now) if live else ())


def client_key(host: str | None) -> str:
    """The client a request is counted against: its IP, or its /64 for IPv6."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is that IPv4 client
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


class ClientLimiter:
    """`decide` over a bounded table of clients, safe to share between the threads of one process."""

    def __init__(self, limits: Sequence[Limit], *, max_clients: int = MAX_CLIENTS) -> None:
        self.limits = tuple(limits)
        self.max_clients = max_clients
        self._clients: OrderedDict[str, tuple[float, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, client: str, now: float) -> float:
        """0 when the request may go ahead (it is counted), else the seconds to wait. `now` is
        monotonic time: a wall clock set back would otherwise lift or extend a limit."""
        with self._lock:
            decision = decide(self._clients.pop(client, ()), now, self.limits)
            if decision.history:
                self._clients[client] = decision.history  # (re)inserted last: most recently seen
                while len(self._clients) > self.max_clients:
                    self._clients.popitem(last=False)
        return decision.retry_after

    def __len__(self) -> int:
        return len(self._clients)
