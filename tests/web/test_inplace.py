"""Plain endpoints run in the event loop's thread where the process has one worker thread, in a
worker thread where it has more; either way FastAPI reads their parameters from the function."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import pytest
from anyio.to_thread import current_default_thread_limiter
from fastapi import FastAPI, Path
from fastapi.testclient import TestClient

from aggregator.web.inplace import InPlaceRoute


@pytest.mark.parametrize(("threads", "in_place"), [(1, True), (4, False)])
def test_a_plain_endpoint_runs_in_place_only_with_one_worker_thread(threads: int, in_place: bool) -> None:
    seen: dict[str, int] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        current_default_thread_limiter().total_tokens = threads
        seen["loop"] = threading.get_ident()
        yield

    app = FastAPI(lifespan=lifespan)
    app.router.route_class = InPlaceRoute

    @app.get("/items/{n}")
    def item(n: Annotated[int, Path(ge=1)]) -> dict[str, int]:
        seen["endpoint"] = threading.get_ident()
        return {"n": n}

    with TestClient(app) as client:
        assert client.get("/items/3").json() == {"n": 3}
        assert client.get("/items/0").status_code == 422  # its parameter's bounds, read through the wrapper
    assert (seen["endpoint"] == seen["loop"]) is in_place
