"""Routes whose plain (`def`) endpoints run in the event loop's thread where a process answers one
request at a time.

FastAPI runs a `def` endpoint in a worker thread and awaits it. Handing each request over and its
answer back cost the web process about 0.2 ms of CPU: under load, a trivial endpoint took 280-300 µs
a request as `def` against 85-90 µs as `async def`, a twentieth of a page. Where the process is given
one worker thread (`serve`'s processes, one per core: aggregator.web.app's lifespan), the thread
buys nothing, since the loop would wait for that one thread anyway; there the endpoint runs in place.
Given more threads (one process serving beside the scheduler), it runs in a worker thread as before,
so that one request's wait for the database overlaps another's rendering.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from anyio.to_thread import current_default_thread_limiter
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool


def in_place(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """`endpoint` as a coroutine: called in place when the process has one worker thread, else in one."""
    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        if current_default_thread_limiter().total_tokens <= 1:
            return endpoint(*args, **kwargs)
        return await run_in_threadpool(endpoint, *args, **kwargs)

    return run


class InPlaceRoute(APIRoute):
    """An APIRoute whose plain function endpoint is run as `in_place` says (FastAPI reads its
    parameters and return type through the wrapper, from the function itself)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if inspect.isfunction(endpoint) and not (inspect.iscoroutinefunction(endpoint)
                                                 or inspect.isgeneratorfunction(endpoint)
                                                 or inspect.isasyncgenfunction(endpoint)):
            endpoint = in_place(endpoint)
        super().__init__(path, endpoint, **kwargs)
