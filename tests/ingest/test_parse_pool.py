"""The parse pool: errors come back as themselves, and a dead parse process costs one poll at most.

Found by the soak: a ParseError raised in a pool process could not be unpickled in the parent
(keyword-only constructor), which broke the ProcessPoolExecutor, and from then on every poll of
that worker failed until it was restarted.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from aggregator import errors
from aggregator.errors import ParseError
from aggregator.ingest import tag_stage
from aggregator.ingest.parse_pool import ParsePool
from aggregator.ingest.story_stage import features_of
from aggregator.ingest.tag_stage import TagContext, process_body

FEEDS_DIR = Path(__file__).parents[1] / "data" / "feeds"
FEED = (FEEDS_DIR / "blogger_atom.xml").read_bytes()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
URL = "https://example.blogspot.com/feeds/posts/default"

ERRORS = [
    errors.ConfigError("bad setting"),
    errors.SourceError(URL, "failed", kind=errors.ErrorKind.INTERNAL),
    errors.FetchError(URL, "timed out", kind=errors.ErrorKind.HTTP_TEMPORARY, status=504, retry_after=NOW),
    errors.ParseError(URL, "not a feed", kind=errors.ErrorKind.NOT_A_FEED),
    errors.BlockedAddressError("metadata.internal", "169.254.169.254"),
    errors.LeaseLost(URL),
    errors.StorageError("database away"),
    errors.SchemaVersionError("newer schema"),
    errors.NotFoundError("feed", 42),
    errors.InvalidQueryError("limit", "too large"),
    errors.InvalidTokenError("this link has expired"),
    errors.DeliveryError("reader@example.org", "mailbox full", temporary=False),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_survives_pickling(error: errors.AggregatorError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


@pytest.fixture
def pool() -> ParsePool:
    p = ParsePool(2)
    yield p
    p.shutdown()


def test_a_parse_error_in_the_pool_arrives_as_a_parse_error_and_the_pool_goes_on(pool: ParsePool) -> None:
    with pytest.raises(ParseError):
        pool(b"<html><body>not a feed</body></html>", URL, "text/html", NOW, TagContext())
    content = pool(FEED, URL, "application/atom+xml", NOW, TagContext())
    assert content.posts
    assert pool.replaced == 0


def test_story_features_come_from_the_pool_only_when_clustering_asks(pool: ParsePool) -> None:
    """They cross a process boundary: what arrives must be what the worker would compute itself."""
    asked = pool(FEED, URL, "application/atom+xml", NOW, TagContext(story_features=True))
    assert asked.posts
    for post in asked.posts:
        assert post.story_features is not None
        assert post.story_features == features_of(post.title, post.text, post.tags)
    assert all(p.story_features is None for p in pool(FEED, URL, "application/atom+xml", NOW, TagContext()).posts)


def test_an_archive_sized_feed_gets_no_story_features_from_the_tag_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the cap the worker computes features only for the posts it clusters, not ~15 KB for
    every entry of an archive (the cap lowered here to this feed's size)."""
    posts = process_body(FEED, URL, "application/atom+xml", NOW, TagContext(story_features=True)).posts
    assert len(posts) > 1 and all(p.story_features is not None for p in posts)
    monkeypatch.setattr(tag_stage, "MAX_FEATURES_PER_FEED", len(posts) - 1)
    posts = process_body(FEED, URL, "application/atom+xml", NOW, TagContext(story_features=True)).posts
    assert all(p.story_features is None for p in posts)


def test_a_killed_parse_process_is_replaced(pool: ParsePool) -> None:
    assert pool(FEED, URL, "application/atom+xml", NOW, TagContext()).posts
    # Only the pool's own processes (the executor keeps them by pid): the test session has others.
    children = [psutil.Process(pid) for pid in pool._executor._processes]
    assert children, "the pool should have started its processes"
    for child in children:
        child.send_signal(signal.SIGKILL)
    psutil.wait_procs(children, timeout=10)
    content = pool(FEED, URL, "application/atom+xml", NOW, TagContext())  # retried on a fresh pool
    assert content.posts
    assert pool.replaced == 1


def test_parse_processes_do_not_inherit_a_lock_held_by_another_thread() -> None:
    """Found by the soak: forked from a busy `aggregator run`, a parse process could inherit the
    taxonomy lock held by a web thread and wait forever. Hold that lock while the pool starts."""
    from aggregator.tagging import taxonomy

    result: list[object] = []
    with taxonomy._LOADING:
        pool = ParsePool(1)
        call = threading.Thread(target=lambda: result.append(
            pool(FEED, URL, "application/atom+xml", NOW, TagContext())), daemon=True)
        call.start()
        call.join(timeout=60)
    try:
        assert result, "the parse process hung on a lock it inherited"
    finally:
        pool.shutdown()


def test_parse_processes_leave_when_their_worker_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed worker must not leave parse processes behind, one set per restart."""
    script = (
        "import sys, psutil\n"
        "from datetime import UTC, datetime\n"
        "from pathlib import Path\n"
        "from aggregator.ingest.parse_pool import ParsePool\n"
        "from aggregator.ingest.tag_stage import TagContext\n"
        "if __name__ == '__main__':\n"
        "    pool = ParsePool(2)\n"
        f"    pool(Path({str(FEEDS_DIR / 'blogger_atom.xml')!r}).read_bytes(), 'https://e.org/f', None,\n"
        "         datetime.now(UTC), TagContext())\n"
        "    print(' '.join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)\n"
        "    sys.stdin.read()\n"
    )
    (tmp_path / "worker.py").write_text(script)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "worker.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert pids, "the pool should have started processes"
    finally:
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=15)
    assert not alive, f"parse processes outlived their worker: {[p.pid for p in alive]}"
