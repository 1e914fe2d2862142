"""Samples the memory and CPU of a process tree from outside it, so sampling costs the measured process nothing.

Run by bench_ingest.py:  python -m bench.procwatch --root PID [--exclude PID ...] [--also NAME=PID ...]

Every `--interval` seconds it sums the RSS and the PSS of ROOT and all its descendants, except itself, the
`--exclude`d processes (with their descendants) and any PostgreSQL process. It remembers the CPU time
of every process it saw. Each line "mark" on its standard input makes it print one JSON line about
the phase since the previous mark, then start a new phase:

    {"seconds": wall time, "samples": n, "peak_rss_mb": peak of the sum, "peak_rss_by_role_mb": {...},
     "peak_pss_mb": the same of the proportional set sizes (a shared page counted once), "peak_pss_by_role_mb": {...},
     "cpu_seconds": {role: CPU seconds used in the phase}, "processes": [{pid, role, cpu_seconds}, ...]}

"machine_busy_cpu_seconds" counts every process on the machine: minus the roles' CPU it is what
other people's work took from the measurement (the machine may be shared).

Roles: "main" (ROOT), "child" (its descendants: parse workers, the reader run), and each `--also`
tree, sampled for CPU only (the feed server, PostgreSQL). It exits when its standard input closes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import psutil

NOT_OURS = ("postgres", "pg_ctl")
REFRESH = 5  # samples between two walks of the process tree


class Watch:
    def __init__(self, root: int, exclude: set[int], also: dict[str, int]) -> None:
        self.root = psutil.Process(root)
        self.exclude = exclude | {os.getpid()}
        self.also = {role: psutil.Process(pid) for role, pid in also.items() if psutil.pid_exists(pid)}
        self.lock = threading.Lock()
        self.cpu_last: dict[int, tuple[str, float]] = {}
        self._known: list[tuple[psutil.Process, str, bool]] = []
        self.start_phase()

    def start_phase(self) -> None:
        with self.lock:
            self._known = []
            self.started = time.monotonic()
            self.started_epoch = time.time()
            self.machine_start = psutil.cpu_times()
            mine = psutil.Process().cpu_times()
            self.own_start = mine.user + mine.system
            self.samples = 0
            self.peak = 0
            self.peak_pss = 0
            self.peak_pss_by_role: dict[str, int] = defaultdict(int)
            self.peak_by_role: dict[str, int] = defaultdict(int)
            self.cpu_base = {pid: cpu for pid, (_, cpu) in self.cpu_last.items()}
            self.phase_pids: dict[int, str] = {}

    def measured(self) -> list[tuple[psutil.Process, str, bool]]:
        """(process, role, counts for memory) of everything watched: the tree is walked again every
        REFRESH samples only (walking /proc is what sampling costs), the known processes read every time."""
        if self.samples % REFRESH == 0 or not self._known:
            self._known = self._walk()
        return self._known

    def _walk(self) -> list[tuple[psutil.Process, str, bool]]:
        found: list[tuple[psutil.Process, str, bool]] = [(self.root, "main", True)]
        skip: set[int] = set()
        for child in self.root.children(recursive=True):
            if child.pid in self.exclude or child.ppid() in skip:
                skip.add(child.pid)
                continue
            try:
                if child.name().startswith(NOT_OURS):
                    continue
            except psutil.Error:
                continue
            found.append((child, "child", True))
        for role, proc in self.also.items():
            found.append((proc, role, False))
            with contextlib.suppress(psutil.Error):
                found.extend((c, role, False) for c in proc.children(recursive=True))
        return found

    def sample(self) -> None:
        with self.lock:
            total, total_pss, by_role, pss_by_role = 0, 0, defaultdict(int), defaultdict(int)
            for proc, role, counts in self.measured():
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        if counts:
                            memory = proc.memory_full_info()
                            rss, pss = memory.rss, memory.pss
                        else:
                            rss = pss = 0
                        created = proc.create_time()
                except psutil.Error:
                    continue
                cpu = times.user + times.system
                if proc.pid not in self.cpu_base:  # first seen: born in this phase counts from zero
                    self.cpu_base[proc.pid] = 0.0 if created >= self.started_epoch - 0.02 else cpu
                self.cpu_last[proc.pid] = (role, cpu)
                self.phase_pids[proc.pid] = role
                total += rss
                total_pss += pss
                by_role[role] += rss
                pss_by_role[role] += pss
            self.samples += 1
            self.peak = max(self.peak, total)
            self.peak_pss = max(self.peak_pss, total_pss)
            for role, rss in by_role.items():
                self.peak_by_role[role] = max(self.peak_by_role[role], rss)
            for role, pss in pss_by_role.items():
                self.peak_pss_by_role[role] = max(self.peak_pss_by_role[role], pss)

    def report(self) -> dict[str, object]:
        with self.lock:
            processes = []
            cpu_by_role: dict[str, float] = defaultdict(float)
            for pid, role in self.phase_pids.items():
                used = self.cpu_last[pid][1] - self.cpu_base.get(pid, 0.0)
                cpu_by_role[role] += used
                processes.append({"pid": pid, "role": role, "cpu_seconds": round(used, 3)})
            busy = _busy(psutil.cpu_times()) - _busy(self.machine_start)
            idle = _idle(psutil.cpu_times()) - _idle(self.machine_start)
            mine = psutil.Process().cpu_times()
            cpu_by_role["watcher"] = (mine.user + mine.system) - self.own_start
            return {
                "seconds": time.monotonic() - self.started,
                # every process on the machine (ours, the watched trees, anyone else's), from /proc/stat
                "machine_busy_cpu_seconds": round(busy, 3),
                "machine_idle_cpu_seconds": round(idle, 3),
                "samples": self.samples,
                "peak_rss_mb": self.peak / 2**20,
                "peak_pss_mb": self.peak_pss / 2**20,
                "peak_pss_by_role_mb": {r: v / 2**20 for r, v in self.peak_pss_by_role.items()},
                "peak_rss_by_role_mb": {r: v / 2**20 for r, v in self.peak_by_role.items()},
                "cpu_seconds": {r: round(v, 3) for r, v in cpu_by_role.items()},
                "processes": processes,
            }


def _busy(times: Any) -> float:
    return sum(getattr(times, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def _idle(times: Any) -> float:
    return times.idle + getattr(times, "iowait", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=int, required=True)
    parser.add_argument("--exclude", type=int, action="append", default=[])
    parser.add_argument("--also", action="append", default=[], help="ROLE=PID, sampled for CPU only")
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    also = {role: int(pid) for role, pid in (item.split("=", 1) for item in args.also)}
    watch = Watch(args.root, set(args.exclude), also)
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            try:
                watch.sample()
            except psutil.NoSuchProcess:  # the root is gone: nothing left to watch
                stop.set()
            stop.wait(args.interval)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    for line in sys.stdin:
        if line.strip() == "mark":
            watch.sample()
            print(json.dumps(watch.report()), flush=True)
            watch.start_phase()
    stop.set()


if __name__ == "__main__":
    main()
