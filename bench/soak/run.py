"""The soak: the whole service under load and faults, checked against ground truth at the end.

    python -m bench.soak.run --minutes 3              # the short form (CI runs it through tests/test_soak.py)
    python -m bench.soak.run --minutes 30 --rate 2    # the long form, figures in docs/RELIABILITY.md

What runs, each in its own process where the service would have one:
- a PostgreSQL of its own (the embedded server, in a temporary folder) so it can be restarted;
- publisher.py: 300 feeds publishing at random times, some flaky (publisher.py says how);
- `aggregator run` (scheduler + polling + the web server) and one more `aggregator worker`:
  two polling processes on one database, as a deployment with a spare worker has;
- a local SMTP server for digests, in this process, so it can be stopped and started;
- a load generator (threads here) asking the REST API and the filtered feeds all the time.

Faults, at fixed fractions of the run: the extra worker is SIGKILLed while it holds leases and
started again; PostgreSQL is stopped for a while and started again; the SMTP server is down when
digests fall due and comes back. Then publishing stops, the service drains, both processes get
SIGTERM, and a fresh worker must resume.

The checks (check.py) compare the database with the publisher's truth and the load generator's
log; the run exits 1 when any fails. `--report FILE` writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bench.soak.check import ApiCall, Observations, evaluate, format_report
from tests.support.database import EmbeddedServer
from tests.support.network import free_port, wait_until
from tests.support.smtp import SmtpSink

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SUBSCRIBERS = 5
# what the service logs when it rides out a fault (counted for the report), and what it must never log
LOG_EVENTS = ("poll.store_retry", "poll.unrecorded", "api.storage_error", "scheduler.tick_failed",
              "digest.smtp_unavailable", "worker.abandoned", "Traceback")


def until(condition: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll what the soak has just broken: any error while it comes back counts as "not yet"."""
    return wait_until(condition, timeout, interval=interval, tolerate=(Exception,))


def mail_received(sink: SmtpSink) -> list[tuple[str, str, str]]:
    """(recipient, Message-ID, Subject) of every delivered copy, as the checker compares them."""
    return [(rcpt, str(r.message.get("Message-ID")), str(r.message.get("Subject")))
            for r in sink.received for rcpt in r.rcpt_tos]


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full (Linux only)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            counts = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(counts["ListenOverflows"]) if "ListenOverflows" in counts else None
    return None


@dataclass
class LoadGenerator:
    """Clients asking what readers and feed readers ask, all the time; every answer logged."""

    base: str
    threads: int = 3
    calls: list[ApiCall] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    post_ids: list[int] = field(default_factory=list)

    PATHS = (
        "/api/v1/posts?limit=50", "/api/v1/posts?country=KZ", "/api/v1/posts?region=central-asia&topic=terrorism",
        "/api/v1/posts?q=Taliban", "/api/v1/posts?q=border%20guards&sort=relevance",
        "/api/v1/posts?topic=cyber&role=primary",
        "/api/v1/facets?country=KZ", "/api/v1/countries", "/api/v1/topics", "/api/v1/sources",
        "/feeds/atom?country=KZ", "/feeds/rss?topic=terrorism", "/feeds/json?region=caucasus", "/readyz",
    )

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.base, timeout=20.0) as client:
            while not self.stop.is_set():
                if self.post_ids and rng.random() < 0.2:
                    path = f"/api/v1/posts/{rng.choice(self.post_ids)}"
                else:
                    path = rng.choice(self.PATHS)
                started, t0 = time.time(), time.monotonic()
                try:
                    response = client.get(path)
                    status, body = response.status_code, response.text[:300] if response.status_code >= 400 else ""
                    if path.startswith("/api/v1/posts?") and status == 200:
                        ids = [item["id"] for item in response.json()["items"][:5]]
                        with self.lock:
                            self.post_ids[:] = (self.post_ids + ids)[-500:]
                except httpx.HTTPError as exc:
                    status, body = 0, f"{type(exc).__name__}: {exc}"
                call = ApiCall(started, time.monotonic() - t0, path.split("?")[0], status, body)
                with self.lock:
                    self.calls.append(call)
                self.stop.wait(rng.uniform(0.02, 0.1))

    def start(self) -> list[threading.Thread]:
        workers = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(self.threads)]
        for t in workers:
            t.start()
        return workers


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.duration = args.minutes * 60
        self.work = Path(tempfile.mkdtemp(prefix="aggregator-soak-"))
        self.obs = Observations(duration=self.duration, feeds=args.feeds, rate=args.rate)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.log_files: list[Any] = []
        self.t0 = time.time()

    # ----- processes -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
        env.update({
            "DATABASE_URL": self.db.url, "AGGREGATOR_DATA_DIR": str(self.work / "data"),
            "AGGREGATOR_FEEDS_FILE": str(self.work / "feeds.yaml"), "AGGREGATOR_ALLOW_PRIVATE_NETWORKS": "true",
            "AGGREGATOR_MIN_INTERVAL": "5", "AGGREGATOR_DEFAULT_INTERVAL": "10", "AGGREGATOR_MAX_INTERVAL": "20",
            # a failed feed retried within the compressed hour, as production's minute within its own
            "AGGREGATOR_MIN_RETRY_SECONDS": "10",
            "AGGREGATOR_TICK_SECONDS": "1", "AGGREGATOR_LEASE_SECONDS": "20", "AGGREGATOR_FETCH_DEADLINE": "4",
            "AGGREGATOR_CONNECT_TIMEOUT": "2", "AGGREGATOR_SHUTDOWN_GRACE_SECONDS": "5",
            # the 300 feeds stand for 300 sites but share one address: per-host politeness would
            # otherwise queue them all behind the hanging ones
            "AGGREGATOR_PER_HOST_CONCURRENCY": "16",
            "AGGREGATOR_HTTP_HOST": "127.0.0.1", "AGGREGATOR_HTTP_PORT": str(self.http_port),
            "AGGREGATOR_SMTP_HOST": "127.0.0.1", "AGGREGATOR_SMTP_PORT": str(self.mail.port),
            "AGGREGATOR_SMTP_TLS": "none", "AGGREGATOR_DIGEST_CHECK_SECONDS": "2",
            "AGGREGATOR_DIGEST_RETRY_SECONDS": "2", "AGGREGATOR_DIGEST_SEND_EMPTY": "true",
            "AGGREGATOR_API_FACETS_REFRESH_SECONDS": "10", "AGGREGATOR_LOG_LEVEL": "INFO",
        })
        return env

    def spawn(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - closed at the end of the run
        self.log_files.append(log)
        proc = subprocess.Popen([sys.executable, "-m", "aggregator", *argv], env=self.env(), cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        return proc

    def cli(self, *argv: str) -> str:
        done = subprocess.run([sys.executable, "-m", "aggregator", *argv], env=self.env(), cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"aggregator {' '.join(argv)} failed: {done.stderr[-2000:]}")
        return done.stdout

    def sql(self, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db.url, connect_timeout=5) as conn:
            return conn.execute(query, params or {}).fetchall()  # type: ignore[arg-type]

    def at(self, fraction: float) -> None:
        """Sleep until `fraction` of the run has passed."""
        delay = self.t0 + fraction * self.duration - time.time()
        if delay > 0:
            time.sleep(delay)

    # ----- the run ---------------------------------------------------------------------------
    def setup(self) -> None:
        self.overflows_at_start = listen_overflows()
        self.db = EmbeddedServer(self.work / "pg")
        self.mail = SmtpSink()
        self.mail.start()
        self.http_port = free_port()
        self.publisher = subprocess.Popen(
            [sys.executable, "-m", "bench.soak.publisher", "--feeds", str(self.args.feeds), "--rate",
             str(self.args.rate), "--seed", str(self.args.seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.publisher.stdout is not None
        self.feed_base = f"http://127.0.0.1:{json.loads(self.publisher.stdout.readline())['port']}"
        lines = ["feeds:"] + [f"  - url: {self.feed_base}/feeds/{n:03d}.xml\n    name: Soak feed {n}"
                              for n in range(self.args.feeds)]
        (self.work / "feeds.yaml").write_text("\n".join(lines) + "\n")
        self.cli("migrate")
        self.t0 = time.time()
        self.spawn("run", "run")
        self.spawn("worker", "worker")
        self.api = f"http://127.0.0.1:{self.http_port}"
        if not until(lambda: httpx.get(self.api + "/readyz").status_code == 200, 60):
            raise RuntimeError("the service did not become ready in 60 s")

    def sample_memory(self, stop: threading.Event) -> None:
        while not stop.wait(2.0):
            row: dict[str, float] = {"t": time.time() - self.t0}
            for name in ("run", "worker"):
                proc = self.procs.get(name)
                try:
                    p = psutil.Process(proc.pid) if proc and proc.poll() is None else None
                    if p is not None:
                        tree = [p, *p.children(recursive=True)]
                        row[name] = sum(q.memory_info().rss for q in tree if q.is_running()) / 2**20
                except psutil.Error:
                    pass
            self.obs.memory.append(row)

    def kill_worker(self) -> None:
        """SIGKILL the extra worker while it holds leases; its feeds must be taken over."""
        proc = self.procs["worker"]
        pid = proc.pid
        held = until(lambda: self.sql(
            "SELECT id FROM sources WHERE lease_owner LIKE %(p)s AND lease_until > now()",
            {"p": f"%:{pid}:%"}), 20, interval=0.05)
        proc.kill()
        proc.wait()
        self.obs.kill = {"at": time.time(), "pid": pid, "leased": [r[0] for r in held or []]}
        time.sleep(3)
        self.spawn("worker", "worker")

    def restart_database(self) -> None:
        stopped = time.time()
        self.db.stop()
        time.sleep(self.args.db_down)
        self.db.start()
        self.obs.db_outage = (stopped, time.time())

    def smtp_outage(self) -> None:
        """The mail server is down when digests fall due; they must go out once it is back."""
        self.mail.stop()
        down = time.time()
        for n in range(SUBSCRIBERS):
            self.cli("subscriptions", "add", f"reader{n}@soak.example", "--region", "central-asia",
                     "--send-hour", "0", "--timezone", "UTC", "--confirmed")
        failed = until(lambda: self.sql(
            "SELECT count(*) FROM digests WHERE attempts >= 1 AND last_error IS NOT NULL")[0][0] >= SUBSCRIBERS, 45)
        self.mail.start()
        self.obs.smtp_outage = (down, time.time(), bool(failed))

    def faults(self) -> None:
        try:
            self.at(0.2)
            self.kill_worker()
            self.at(0.4)
            self.restart_database()
            self.at(0.6)
            self.smtp_outage()
        except Exception as exc:  # a fault that could not be staged fails the run, it doesn't hang it
            self.obs.problems.append(f"fault injection failed: {type(exc).__name__}: {exc}")

    def drain(self) -> None:
        httpx.post(self.feed_base + "/__stop")
        self.obs.truth = httpx.get(self.feed_base + "/__truth", timeout=30).json()
        urls = [a["url"] for a in self.obs.truth["articles"]]
        links = sum(len(a["feeds"]) for a in self.obs.truth["articles"])

        def all_stored() -> bool:
            """Every article stored and linked to every feed that carries it: a syndicated copy in a
            second feed arrives with that feed's next poll, which may come after the first copy."""
            rows = self.sql("""SELECT count(DISTINCT p.url), count(DISTINCT (p.url, ps.source_id))
                               FROM posts p LEFT JOIN post_sources ps ON ps.post_id = p.id
                               WHERE p.url = ANY(%(u)s)""", {"u": urls})
            return rows[0][0] >= len(urls) and rows[0][1] >= links

        t0 = time.monotonic()
        done = until(all_stored, self.args.drain, interval=1.0)
        self.obs.drain_seconds = time.monotonic() - t0 if done else None
        until(lambda: len({r for r, _, _ in mail_received(self.mail)}) >= SUBSCRIBERS, 60)

    def shutdown(self) -> None:
        """SIGTERM both; each must exit within the grace period plus a margin, leases released."""
        for name in ("worker", "run"):
            proc = self.procs[name]
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = None
            self.obs.shutdown[name] = {"seconds": time.monotonic() - t0, "exit": code}
        self.obs.leases_after_shutdown = self.sql(
            "SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL AND lease_until > now()")[0][0]
        # The next start resumes: a fresh worker polls again.
        since = self.sql("SELECT now()")[0][0]
        proc = self.spawn("resume", "worker")
        resumed = until(lambda: self.sql(
            "SELECT count(*) FROM fetch_log WHERE started_at > %(s)s", {"s": since})[0][0] > 0, 60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        self.obs.resumed = bool(resumed)

    def collect(self) -> None:
        self.obs.posts = self.sql(
            "SELECT p.id, p.url, p.primary_countries, p.topics, array_agg(s.url ORDER BY s.url) "
            "FROM posts p JOIN post_sources ps ON ps.post_id = p.id JOIN sources s ON s.id = ps.source_id "
            "GROUP BY p.id")
        self.obs.sources = self.sql(
            "SELECT url, enabled, etag, last_success_at IS NOT NULL, consecutive_failures, last_error_kind "
            "FROM sources")
        self.obs.fetches = self.sql(
            "SELECT s.url, f.outcome, f.error_kind, f.worker, extract(epoch FROM f.started_at), f.source_id "
            "FROM fetch_log f JOIN sources s ON s.id = f.source_id")
        end = listen_overflows()
        if end is not None and self.overflows_at_start is not None:
            self.obs.listen_overflows = end - self.overflows_at_start
        self.obs.digests = self.sql("SELECT subscription_id, state, attempts, uncertain FROM digests")
        self.obs.mail = mail_received(self.mail)
        events = Counter()
        for log in self.work.glob("*.log"):
            for line in log.read_text(errors="replace").splitlines():
                for event in LOG_EVENTS:
                    if event in line:
                        events[event] += 1
        self.obs.log_events = dict(events)

    def run(self) -> int:
        try:
            self.setup()
            stop_sampling = threading.Event()
            threading.Thread(target=self.sample_memory, args=(stop_sampling,), daemon=True).start()
            load = LoadGenerator(self.api, threads=self.args.clients)
            clients = load.start()
            faults = threading.Thread(target=self.faults, daemon=True)
            faults.start()
            self.at(1.0)
            faults.join()
            self.drain()
            load.stop.set()
            for t in clients:
                t.join(timeout=30)
            stop_sampling.set()
            self.obs.calls = load.calls
            self.shutdown()
            self.collect()
        except Exception as exc:
            self.obs.problems.append(f"the run broke: {type(exc).__name__}: {exc}")
        finally:
            self.close()
        result = evaluate(self.obs)
        print(format_report(result))
        if self.args.report:
            Path(self.args.report).write_text(json.dumps(result, indent=2, default=str))
        return 0 if result["passed"] else 1

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if getattr(self, "publisher", None) is not None and self.publisher.poll() is None:
            self.publisher.terminate()
            self.publisher.wait(timeout=30)
        if getattr(self, "mail", None) is not None:
            self.mail.stop()
        for log in self.log_files:
            log.close()
        if getattr(self, "db", None) is not None:
            self.db.close()
        if self.args.keep:
            print(f"logs kept in {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="Length of the publishing phase.")
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--rate", type=float, default=1.0, help="Posts published per second, over all feeds.")
    parser.add_argument("--clients", type=int, default=3, help="Load generator threads.")
    parser.add_argument("--db-down", type=float, default=8.0, help="Seconds PostgreSQL stays stopped.")
    parser.add_argument("--drain", type=float, default=240.0, help="Seconds allowed to catch up after publishing.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--report", help="Write the figures as JSON to this file.")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder (logs, database).")
    return Soak(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
