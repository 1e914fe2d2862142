"""What the routes share, built once per app: settings, database, taxonomy, and a small counts cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import psycopg
from fastapi import Request

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.query import Vocabulary

if TYPE_CHECKING:
    from aggregator.tagging import Taxonomy

T = TypeVar("T")


class TtlCache(Generic[T]):
    """One value recomputed at most every `seconds`: all-time counts per code cost a scan of the tags,
    and a minute-old count is as good as a fresh one on a taxonomy page."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._value: T | None = None
        self._expires = 0.0

    def get(self, compute: Callable[[], T]) -> T:
        with self._lock:
            if self._value is not None and time.monotonic() < self._expires:
                return self._value
            self._value = compute()
            self._expires = time.monotonic() + self.seconds
            return self._value


@dataclass
class ApiContext:
    settings: Settings
    db: Database
    taxonomy: Taxonomy
    vocabulary: Vocabulary
    counts: TtlCache[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = TtlCache(self.settings.api_counts_cache_seconds)

    def read(self) -> AbstractContextManager[psycopg.Connection]:
        """A read-only transaction on one snapshot, bounded by the API's statement timeout."""
        return self.db.read(statement_timeout=self.settings.api_statement_timeout)

    def tag_name(self, kind: str, code: str) -> str | None:
        if kind == "place":
            place = self.taxonomy.places.get(code)
            return place.name if place else None
        return (self.taxonomy.countries if kind == "country" else self.taxonomy.topics).get(code)


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api
    return context
