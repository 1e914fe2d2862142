"""feedparser's sanitizer vectors (../shared/data/feedparser-corpus/wellformed/sanitize/) ingested by
the real pipeline and served in every format: no <script>, no event-handler attribute and no
javascript: URL may reach a reader, however the vector hides it (entities, case, whitespace)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import lxml.html
import pytest
from lxml import etree

from aggregator.db import Database
from aggregator.feeds_out.model import entry_id
from aggregator.runtime import build_web_app
from tests.api.conftest import TestClient, api_settings
from tests.support.hostile import HostileCorpus

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "poster", "data", "xlink:href", "cite",
                  "longdesc", "usemap", "dynsrc", "lowsrc", "srcset"}
ATOM = "http://www.w3.org/2005/Atom"
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


def dangers(fragment: str) -> list[str]:
    """What in this HTML could run script in a reader that shows it."""
    found = []
    if not fragment.strip():
        return found
    for node in lxml.html.fragments_fromstring(f"<div>{fragment}</div>"):
        if not isinstance(node, lxml.html.HtmlElement):
            continue
        for element in node.iter():
            if not isinstance(element.tag, str):
                continue
            if element.tag.lower() in ("script", "iframe", "object", "embed", "applet"):
                found.append(f"<{element.tag}>")
            for name, value in element.attrib.items():
                if name.lower().startswith("on"):
                    found.append(f"{name}= on <{element.tag}>")
                scheme = _INVISIBLE.sub("", html.unescape(value)).lower()
                if (name.lower() in URL_ATTRIBUTES or name.lower() == "style") and (
                        "javascript:" in scheme or "vbscript:" in scheme or "expression(" in scheme):
                    found.append(f"{name}={value[:60]!r}")
    return found


def stored_posts(client: TestClient) -> int:
    with client.app.state.api.db.connection() as conn:  # type: ignore[attr-defined]
        row = conn.execute("SELECT count(*) FROM posts").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def sanitize_site(shared_data: Path, hostile_corpus: HostileCorpus, tmp_path: Path) -> Iterator[TestClient]:
    """feedparser's sanitizer vectors (and our own payloads) as stored by the real pipeline."""
    if not hostile_corpus.vectors:
        pytest.skip("the feedparser sanitize vectors are absent from ../shared/data/feedparser-corpus")
    assert hostile_corpus.ok_vectors > 300  # most vectors hold an entry
    settings = api_settings(hostile_corpus.url, tmp_path, feeds_max_entries=1000)
    with Database(hostile_corpus.url, max_size=4) as db, TestClient(build_web_app(settings, db)) as client:
        yield client


def own_payload_ids(client: TestClient) -> set[str]:
    """Feed entry ids of the posts from our own payload feeds (tests/security checks those, titles
    that are text about markup included); this test reads feedparser's vectors."""
    with client.app.state.api.db.connection() as conn:  # type: ignore[attr-defined]
        keys = conn.execute("SELECT DISTINCT p.dedup_key FROM posts p JOIN post_sources ps ON ps.post_id = p.id "
                            "JOIN sources s ON s.id = ps.source_id WHERE s.url NOT LIKE %s", ["%/vectors/%"]).fetchall()
    return {entry_id(key) for (key,) in keys}


def test_no_script_reaches_any_feed(sanitize_site: TestClient) -> None:
    own = own_payload_ids(sanitize_site)
    assert own, "the corpus has our own payloads too: the filter below has work"
    fragments: list[str] = []  # every text of every entry, HTML or not: some readers render titles as HTML
    for fmt, entry, entry_id_of in (("atom", f"{{{ATOM}}}entry", f"{{{ATOM}}}id"), ("rss", "channel/item", "guid")):
        body = sanitize_site.get(f"/feeds/{fmt}", params={"limit": "1000"}).content
        assert b"javascript:" not in body.lower()
        entries = etree.fromstring(body).findall(entry)  # escaped HTML, unescaped once by the XML parser
        theirs = [e for e in entries if e.findtext(entry_id_of) not in own]
        assert len(entries) - len(theirs) == len(own), f"{fmt}: every own payload's entry found by its id"
        fragments += [text for e in theirs for text in e.itertext()]
    items = json.loads(sanitize_site.get("/feeds/json", params={"limit": "1000"}).content)["items"]
    assert len(items) == stored_posts(sanitize_site) > 200
    fragments += [item[key] for item in items if item["id"] not in own for key in ("title", "summary", "content_html")]
    problems = [problem for fragment in fragments for problem in dangers(fragment)]
    assert not problems, problems[:20]
    assert any("<img" in f for f in fragments)  # the vectors' harmless markup survived: the check had work


def test_the_checker_sees_each_kind_of_danger() -> None:
    assert dangers('<p onclick="x()">a</p><script>x</script><a href=" jav&#x09;ascript:alert(1)">b</a>') == [
        "onclick= on <p>", "<script>", "href=' jav\\tascript:alert(1)'"]
    assert dangers('<p style="width: expression(alert(1))">a</p>') and not dangers('<a href="https://x">ok</a>')
