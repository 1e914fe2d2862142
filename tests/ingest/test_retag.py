"""`aggregator retag`: after a taxonomy change, stored posts get the new tags (rows and arrays)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.pipeline import Pipeline
from aggregator.tagging import load_taxonomy
from aggregator.tagging.taxonomy import DEFAULT_FOLDER as TAXONOMY
from tests.support.feedserver import FeedServer
from tests.support.polling import claim_and_poll
from tests.support.processes import finish

FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Desk</title><link>https://d.example/</link>
<description>x</description>
<item><title>Border guards detain smugglers near Zorkul</title><guid>https://d.example/1</guid>
<link>https://d.example/1</link><description>Guards detained three smugglers near Zorkul lake.</description></item>
<item><title>Election commission in Astana registers candidates</title><guid>https://d.example/2</guid>
<link>https://d.example/2</link><description>The commission registered five candidates.</description></item>
</channel></rss>"""


def ingest(db: Database, settings: Settings, feed_server: FeedServer, body: bytes = FEED) -> None:
    feed_server.serve("/feed", body)
    url = feed_server.url("/feed")
    with Fetcher(settings) as fetcher:
        assert claim_and_poll(db, Pipeline(db, fetcher, settings), url, add=True).new_posts == 2


def test_retag_applies_a_taxonomy_change(db: Database, settings: Settings, feed_server: FeedServer,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ingest(db, settings, feed_server)
    with db.connection() as conn:
        before = dict(conn.execute("SELECT url, countries FROM posts").fetchall())
        old_version = conn.execute("SELECT DISTINCT taxonomy_version FROM post_tags").fetchall()
    assert "TJ" not in before["https://d.example/1"]

    changed = tmp_path / "taxonomy"
    shutil.copytree(TAXONOMY, changed)
    focus = changed / "focus-countries.yaml"  # a place name the shipped taxonomy does not know
    assert "Zorkul" not in focus.read_text("utf-8")
    focus.write_text(focus.read_text("utf-8").replace("places: [Dushanbe,", "places: [Zorkul, Dushanbe,", 1), "utf-8")
    new_version = load_taxonomy(changed).version
    assert (new_version,) not in old_version

    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("AGGREGATOR_TAXONOMY_DIR", str(changed))
    monkeypatch.setenv("AGGREGATOR_PARSE_PROCESSES", "1")
    assert main(["retag", "--quiet"]) == 0
    assert "re-tagged 2 post(s)" in capsys.readouterr().out
    with db.connection() as conn:
        after = dict(conn.execute("SELECT url, countries FROM posts").fetchall())
        versions = conn.execute("SELECT DISTINCT taxonomy_version FROM post_tags").fetchall()
        evidence = conn.execute(
            "SELECT evidence FROM post_tags WHERE code = 'TJ' AND kind = 'country'").fetchone()
    assert "TJ" in after["https://d.example/1"] and "KZ" in after["https://d.example/2"]
    assert versions == [(new_version,)]
    assert evidence and any(e["phrase"] == "Zorkul" for e in evidence[0])

    assert main(["retag", "--quiet", "--since", "2999-01-01"]) == 0
    assert "re-tagged 0 post(s)" in capsys.readouterr().out
    assert main(["retag", "--since", "yesterday"]) == 1
    assert "--since" in capsys.readouterr().err


def test_retag_fills_places_and_languages_of_posts_stored_before_them(
        db: Database, settings: Settings, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    feed = FEED.replace(b"Border guards detain smugglers near Zorkul", b"Border guards detain smugglers in Dagestan")
    ingest(db, settings, feed_server, feed)
    with db.connection() as conn:  # as a post stored before places and language detection looks
        conn.execute("DELETE FROM post_tags WHERE kind = 'place'")
        conn.execute("UPDATE posts SET places = '{}', lang = 'ru', taxonomy_version = 'old'")

    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("AGGREGATOR_PARSE_PROCESSES", "1")
    assert main(["retag", "--quiet"]) == 0
    assert "re-tagged 2 post(s)" in capsys.readouterr().out
    with db.connection() as conn:
        after = {u: (places, lang) for u, places, lang in conn.execute("SELECT url, places, lang FROM posts")}
        rows = conn.execute("SELECT code, evidence FROM post_tags WHERE kind = 'place'").fetchall()
    assert after["https://d.example/1"] == (["dagestan"], "en")
    assert after["https://d.example/2"] == ([], "en")
    assert [(code, [e["phrase"] for e in evidence]) for code, evidence in rows] == [("dagestan", ["Dagestan"])]


# Run as a separate `aggregator retag` process with two tagging processes, while a thread of it
# holds the taxonomy's loading lock most of the time (as the pool threads of a busy process hold
# their locks): a process forked from it would inherit the lock held and wait forever.
RETAG_WITH_A_BUSY_THREAD = """
import sys, threading, time
from aggregator.tagging import taxonomy

def busy() -> None:
    while True:
        with taxonomy._LOADING:
            time.sleep(0.2)
        time.sleep(0.005)

threading.Thread(target=busy, daemon=True).start()
from aggregator.cli import main
sys.exit(main(["retag", "--quiet", "--batch-size", "1"]))
"""


def test_retag_processes_are_not_forked_from_a_threaded_process(db: Database, settings: Settings,
                                                                feed_server: FeedServer) -> None:
    import os
    import subprocess
    import sys

    from aggregator.ingest.parse_pool import process_pool

    pool = process_pool(2)
    try:
        assert pool._mp_context.get_start_method() in ("forkserver", "spawn")  # type: ignore[attr-defined]
    finally:
        pool.shutdown()

    ingest(db, settings, feed_server)
    env = {**os.environ, "DATABASE_URL": settings.database_url or "", "AGGREGATOR_PARSE_PROCESSES": "2",
           "AGGREGATOR_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-c", RETAG_WITH_A_BUSY_THREAD], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    # forked children hang too: finish() kills them with the command
    out, err = finish(proc, 45, what="retag (a tagging process forked with a lock held hangs)")
    assert proc.returncode == 0, err
    assert "re-tagged 2 post(s)" in out
