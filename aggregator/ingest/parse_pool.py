"""Parsing in other processes: the parse pool, and the inline parse that one-shot commands use.

Parsing and tagging are CPU-bound, and a pathological feed should cost a process, not the worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from aggregator.errors import ErrorKind, ParseError
from aggregator.ingest.models import FeedContent
from aggregator.ingest.tag_stage import TagContext, process_body

log = logging.getLogger(__name__)


ParseFn = Callable[[bytes, str, str | None, datetime, TagContext | None], FeedContent]

parse_inline: ParseFn = process_body


def _exit_with_worker(worker_pid: int) -> None:
    """In a parse process: leave when the worker that started it is gone. (Its parent is the fork
    server, which itself stays up as long as its children do, so the parent can't tell.)"""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(worker_pid, 0)
            except (ProcessLookupError, PermissionError):  # gone, or its pid reused by another user's process
                os._exit(0)

    threading.Thread(target=watch, name="worker-watch", daemon=True).start()


def process_pool(processes: int) -> ProcessPoolExecutor:
    """Processes for CPU-bound work (parsing, tagging, re-tagging), never forked from the caller.

    The processes that use them (`aggregator run`, `retag`) have threads (web server, scheduler,
    database pool), and a child forked while one of those holds a lock (the taxonomy cache's, say)
    inherits it locked and waits forever. So they start from a clean server process (forkserver,
    else spawn), and each exits by itself when the process that started it is gone (a SIGKILLed
    worker left them behind).
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:  # what every such process needs, loaded once and shared (ingest/preload.py)
        context.set_forkserver_preload(["aggregator.ingest.preload"])
    return ProcessPoolExecutor(processes, mp_context=context, initializer=_exit_with_worker,
                               initargs=(os.getpid(),))


class ParsePool:
    """Parse and tag in other processes: both are CPU-bound, and a pathological feed then costs a
    process, not the scheduler.

    A process that dies (the kernel's OOM killer, a crash in a C extension on a hostile body) breaks
    a ProcessPoolExecutor for good: every later submit fails. So a broken pool is replaced, and the
    polls that were riding on it get one retry on the new one; a body that breaks the pool twice is
    that feed's parse error, and every other feed goes on.

    The processes are not forked from the worker (see `process_pool`).
    """

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.replaced = 0
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return process_pool(self.processes)

    def __call__(self, body: bytes, url: str, content_type: str | None, now: datetime,
                 ctx: TagContext | None) -> FeedContent:
        for attempt in (1, 2):
            executor = self._executor
            try:
                return executor.submit(process_body, body, url, content_type, now, ctx).result()
            except BrokenProcessPool as exc:
                self._replace(executor)
                if attempt == 2:
                    raise ParseError(url, "the parsing process died on this feed", kind=ErrorKind.PARSER_DIED) from exc
        raise AssertionError("unreachable")

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = self._new_executor()
                self.replaced += 1
                broken.shutdown(wait=False, cancel_futures=True)
                log.warning("parse_pool.replaced processes=%d times=%d", self.processes, self.replaced)

    def shutdown(self) -> None:
        self._executor.shutdown(cancel_futures=True)
