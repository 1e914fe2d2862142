"""The embedded PostgreSQL: started on demand, shared by the aggregator processes of one data
folder, and stopped once none of them is left, however they ended.

pgserver starts the server and counts its users in PGDATA/.handle_pids.json: a process adds its
PID when it joins and removes it in an exit hook, and the one that leaves the list empty stops
the server. A process ended by a signal runs no exit hook, so its PID stayed in the list for good,
no later process was ever the last one, and the server ran on with nobody to stop it. Three
additions close that:

- joining and leaving first drop the PIDs of processes that are gone (`forget_dead_users`), so the
  last live user stops the server at its exit, as pgserver intends;
- the CLI turns SIGTERM into an ordinary exit (SIGINT already is one), so exit hooks run;
- a watchdog process per server stops it when every user vanished without an exit hook (SIGKILL,
  the OOM killer), looking twice a second; it leaves as soon as the server is stopped.

The list is read and written under pgserver's own inter-process lock, in every process.

This file is also the watchdog's program. It is run by its path (`python -P embedded.py PGDATA
PID`) rather than as `aggregator.db.embedded`, so the watchdog does not import the database layer
and stays a 20 MB process: keep its imports to the standard library, psutil and pgserver.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import psutil

log = logging.getLogger("aggregator.db.embedded")

USERS_FILE = ".handle_pids.json"  # pgserver's list of the PIDs using the server
WATCHDOG_LOCK = ".watchdog.lock"  # held by the server's watchdog for as long as it runs
WATCHDOG_LOG = "watchdog.log"
WATCH_INTERVAL = 0.5  # seconds between two looks of the watchdog
STOP_TIMEOUT = 60.0

_joining = threading.Lock()  # pgserver's lock is per process, not per thread, and not reentrant
_leaving_hooks: set[Path] = set()


def _pgserver() -> ModuleType:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here
        warnings.simplefilter("ignore")
        import pgserver  # imported here: only the embedded mode needs it
    return pgserver


@contextmanager
def _server_lock() -> Iterator[None]:
    """pgserver's inter-process lock, the one it holds while it starts, joins, leaves or stops."""
    with _pgserver().postgres_server.PostgresServer._lock:
        yield


def _system_user() -> str | None:
    """The account pgserver runs the server as: its own `pgserver` user when started by root."""
    return "pgserver" if os.geteuid() == 0 else None


# --- who uses the server ---------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # exists, owned by someone else
        return True


def _read_users(pgdata: Path) -> list[int] | None:
    """The PIDs in the list; None when it cannot be read now (being written: look again)."""
    try:
        values = json.loads((pgdata / USERS_FILE).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return None
    return [v for v in values if isinstance(v, int)] if isinstance(values, list) else None


def forget_dead_users(pgdata: Path) -> list[int]:
    """Drop the PIDs of processes that are gone from the list; the live ones. Hold the lock."""
    users = _read_users(pgdata) or []
    live = [pid for pid in users if _alive(pid)]
    if live != users:
        (pgdata / USERS_FILE).write_text(json.dumps(live))
        log.info("db.embedded_users_forgotten pgdata=%s pids=%s", pgdata,
                 ",".join(str(pid) for pid in users if pid not in live))
    return live


def server_pid(pgdata: Path) -> int | None:
    """The running postmaster's PID (first line of postmaster.pid), None when none runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        return pid if _alive(pid) and psutil.Process(pid).name() == "postgres" else None
    except (OSError, ValueError, psutil.Error):
        return None


def _stop_server(pgdata: Path) -> None:
    """pg_ctl's fast shutdown (clients are disconnected, nothing is lost); a kill if that fails."""
    try:
        _pgserver().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user(),
                           timeout=STOP_TIMEOUT)
        return
    except (subprocess.SubprocessError, OSError) as exc:
        log.warning("db.embedded_stop_failed pgdata=%s error=%s", pgdata, exc)
    pid = server_pid(pgdata)
    if pid is not None:
        process = psutil.Process(pid)
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            process.kill()


# --- joining and leaving ---------------------------------------------------------------------

def start(pgdata: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or join) the server of `pgdata`; its URL. pgserver's errors pass through as they are."""
    pg = _pgserver()
    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _joining:
        if pgdata.is_dir():
            with _server_lock():
                forget_dead_users(pgdata)
        try:
            server = pg.get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")
        finally:  # also when interrupted half-way: a server started for nobody must not outlive us
            if (pgdata / "PG_VERSION").exists():
                _ensure_watchdog(pgdata)
        if pgdata not in _leaving_hooks:  # runs before pgserver's own exit hook, registered earlier
            atexit.register(_forget_dead_users_at_exit, pgdata)
            _leaving_hooks.add(pgdata)
    return str(server.get_uri())


def _forget_dead_users_at_exit(pgdata: Path) -> None:
    """So that pgserver's exit hook, which counts the list, sees whether this process is the last."""
    try:
        with _server_lock():
            forget_dead_users(pgdata)
    except Exception:  # at exit, with the folder possibly gone: the watchdog still has the last word
        log.debug("db.embedded_leave_failed pgdata=%s", pgdata, exc_info=True)


@dataclass(frozen=True, slots=True)
class StopResult:
    stopped: bool
    server_pid: int | None  # None: no server was running
    users: list[int] = field(default_factory=list)  # live aggregator processes using it


def stop(pgdata: Path, *, force: bool = False) -> StopResult:
    """Stop the server of `pgdata` on request; refused (stopped=False, users) while processes use
    it, unless `force`. Never starts anything."""
    pgdata = pgdata.resolve()
    if not (pgdata / "PG_VERSION").exists():
        return StopResult(False, None)
    with _server_lock():
        pid = server_pid(pgdata)
        if pid is None:
            return StopResult(False, None)
        users = [user for user in forget_dead_users(pgdata) if user != os.getpid()]
        if users and not force:
            return StopResult(False, pid, users)
        _stop_server(pgdata)
    log.info("db.embedded_stopped pgdata=%s pid=%d users=%d", pgdata, pid, len(users))
    return StopResult(True, pid, users)


# --- the watchdog ----------------------------------------------------------------------------

def _ensure_watchdog(pgdata: Path) -> None:
    """Start the server's watchdog unless one runs (it holds WATCHDOG_LOCK for its lifetime)."""
    try:
        with open(pgdata / WATCHDOG_LOCK, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # one is watching
        # the lock is free again (closed): the new watchdog takes it; if two start, one leaves
        with open(pgdata / WATCHDOG_LOG, "a") as err:
            subprocess.Popen([sys.executable, "-P", str(Path(__file__).resolve()), str(pgdata), str(os.getpid())],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=True, close_fds=True)  # its own session: no terminal Ctrl-C
    except OSError as exc:
        log.warning("db.embedded_watchdog_not_started pgdata=%s error=%s", pgdata, exc)


def _needed(pgdata: Path, starter: int, *, forget: bool) -> bool:
    """Whether the server runs and someone uses it (the process that started the watchdog counts
    until it is gone: it may not be in the list yet). Without `forget`, a list naming a process
    that is gone answers no too, so that the caller looks again under the lock and forgets it."""
    if not (pgdata / "PG_VERSION").exists() or server_pid(pgdata) is None:
        return False
    if forget:
        return bool(forget_dead_users(pgdata)) or _alive(starter)
    users = _read_users(pgdata)
    if users is None:  # being written: someone is joining or leaving
        return True
    live = [pid for pid in users if _alive(pid)]
    return len(live) == len(users) and (bool(live) or _alive(starter))


def watch(pgdata: Path, starter: int) -> None:
    """The watchdog: look every WATCH_INTERVAL; when the server runs for nobody, stop it and leave.
    Leaves too when the server stopped by other means (the last user's exit, `aggregator db stop`).
    Keeps the list true meanwhile: a user that is gone is forgotten at the next look."""
    lock = open(pgdata / WATCHDOG_LOCK, "a")  # noqa: SIM115  (held for the process's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another watchdog has this server
    log.info("db.embedded_watchdog_started pgdata=%s starter=%d", pgdata, starter)
    while True:
        time.sleep(WATCH_INTERVAL)
        if _needed(pgdata, starter, forget=False):
            continue
        with _server_lock():  # decide and act where joining processes wait
            if _needed(pgdata, starter, forget=True):
                continue
            if server_pid(pgdata) is not None:
                log.info("db.embedded_orphan_stopping pgdata=%s", pgdata)
                _stop_server(pgdata)
            # Released before pgserver's lock: a process that joins after this looks finds no
            # watchdog and starts a new one.
            lock.close()
        log.info("db.embedded_watchdog_left pgdata=%s", pgdata)
        return


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    watch(Path(sys.argv[1]), int(sys.argv[2]))
