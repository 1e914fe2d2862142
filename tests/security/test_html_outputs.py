"""No script survives from a feed into anything we serve or send: hostile feeds go through the real
pipeline (local HTTP feed server -> worker -> fetch, parse, normalize, tag, store) and every output
is read back the way its consumer reads it and searched with tests/security/html_check.py:

    API        GET /api/v1/posts (every page) and /api/v1/posts/{id}: the `html` field, the URLs
    feeds      /feeds/atom, /feeds/rss, /feeds/json: every text node (escaped HTML, unescaped once by
               the XML parser) and every JSON string as HTML, every link attribute or URL field
    digest     the email a real SMTP server received: the HTML part (our inline CSS allowed, nothing
               else) and the plain-text part

Inputs: our own payloads (tests/data/hostile/xss_payloads.rss and .atom, one technique per entry,
plus a nesting bomb built here) and, when ../shared is present, feedparser's sanitizer vectors. The
user-typed values on our web pages are checked in test_headers.py, next to the pages' headers.

Each payload is first shown to be hostile: the checker must flag the very HTML the pipeline hands to
the sanitizer (`read_feed`, as `normalize` gets it), so a clean output cannot come from harmless
input. The protection itself was proven the hard way: with aggregator.textclean.sanitize_html made to
return its input unchanged, the output tests of this module fail (script, on* handlers, javascript:
URLs reach the API, the feeds and the digest); restored, they pass.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import send_due
from aggregator.ingest.parse import read_feed
from aggregator.runtime import build_web_app
from tests.api.conftest import TestClient, api_settings
from tests.digest.conftest import active, digest_settings, later
from tests.security.html_check import active_content, text_and_attributes, url_scheme_is_active
from tests.support.database import reset
from tests.support.hostile import DEEP_PATH, HOSTILE, OWN_FEEDS, HostileCorpus, deep_nesting_feed, vector_files
from tests.support.smtp import SmtpSink

HARMLESS_CONTROLS = ("Payload 47",)  # kept markup: proves the checks below see real HTML, not empty strings
# feedparser's vectors named for what they hide. Not "…_script_nested_cdata": in HTML (not XML) its
# `<![CDATA[<script>` opens a bogus comment, so the payload is inert before any sanitizer sees it.
HOSTILE_VECTOR = re.compile(r"^(entry|item)_[a-z_]+?_(applet|crazy|embed|frame|iframe|link|meta|object|on[a-z]+"
                            r"|script(_[a-z]+)*|style(_tag)?)\.xml$")
INERT_VECTORS = frozenset({"item_content_encoded_script_nested_cdata.xml"})
URL_KEYS = frozenset({"url", "external_url", "home_page_url", "feed_url", "image", "banner_image", "icon",
                      "favicon", "avatar", "next_url"})
MARKUP_NAMESPACES = frozenset({"http://www.w3.org/1999/xhtml", "http://www.w3.org/2000/svg",
                               "http://www.w3.org/1998/Math/MathML"})
ITEM = re.compile(r"json\.items\[\d+\]")
XML_URL_ATTRIBUTES = frozenset({"href", "src", "url", "uri", "domain", "xmlUrl", "htmlUrl"})


def raw_fragments(entry: dict[str, Any]) -> list[str]:
    """An entry's HTML as the normalizer receives it, before any sanitizing (feedparser's own
    sanitizer is off in the pipeline): title, summary, every content, and the link as an anchor."""
    found = [d["value"] for d in (entry.get("title_detail"), entry.get("summary_detail")) if d and d.get("value")]
    found += [c["value"] for c in entry.get("content") or () if c.get("value")]
    if entry.get("link"):
        found.append(f'<a href="{html.escape(entry["link"])}">link</a>')
    return found


def raw_problems(body: bytes, url: str) -> dict[str, list[str]]:
    """Entry title -> what the checker flags in that entry's raw HTML."""
    return {str(e.get("title", "")): [p for f in raw_fragments(e) for p in active_content(f)]
            for e in read_feed(body, url=url).entries}


# --- the checker sees what it must, before anything is trusted to it -----------------------------------------


def test_every_own_payload_is_hostile_before_sanitizing() -> None:
    feeds = {name: (HOSTILE / name).read_bytes() for name in OWN_FEEDS.values()}
    feeds["deep"] = deep_nesting_feed()
    entries = {title: found for name, body in feeds.items() for title, found in raw_problems(body, name).items()}
    assert len(entries) == 47 + 7 + 1
    harmless = [t for t, found in entries.items() if not found]
    assert all(t.startswith(HARMLESS_CONTROLS) for t in harmless) and len(harmless) == len(HARMLESS_CONTROLS), harmless


def test_feedparser_vectors_are_hostile_before_sanitizing(shared_data: Path) -> None:
    hostile = [p for p in vector_files() if HOSTILE_VECTOR.match(p.name) and p.name not in INERT_VECTORS]
    assert len(hostile) > 200
    missed = [p.name for p in hostile if not any(raw_problems(p.read_bytes(), p.name).values())]
    assert not missed


@pytest.mark.parametrize("payload", [
    '<a href="&#106;avascript:alert(1)">x</a>', '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="&#x6A;avascript&colon;alert(1)">x</a>', '<a href=" JAVA\nSCRIPT:x">x</a>',
    '<img srcset="https://ok/1.png 1x, javascript:alert(1) 2x">', '<a href="data:text/html,x">x</a>',
    '<img src="data:image/svg+xml;base64,AAAA">', '<form action="https://x/"></form>', '<base href="https://x/">',
    '<meta http-equiv="refresh" content="0;url=https://x/">', '<svg></svg>', '<math></math>', '<style></style>',
    '<iframe></iframe>', '<object></object>', '<embed>', '<p onclick="x()">x</p>', '<p style="color:red">x</p>',
    '<button formaction="javascript:x">x</button>', '<a xlink:href="javascript:x">x</a>',
    '<video poster="javascript:x">', '<table background="javascript:x">', '<script>x</script>',
])
def test_the_checker_flags_each_kind_of_danger(payload: str) -> None:
    assert active_content(payload), payload


def test_the_checker_leaves_inert_html_and_escaped_markup_alone() -> None:
    inert = ('<p>Text &lt;script&gt;alert(1)&lt;/script&gt; <a href="https://ok.example/a?b=javascript:x" '
             'rel="noopener noreferrer nofollow">ok</a> <img src="https://img.example/x.png" alt="data:x"></p>')
    assert active_content(inert) == []
    assert active_content('<td style="padding:4px;color:#333">x</td>', own_inline_css=True) == []
    assert active_content('<td style="background:url(https://x/)">x</td>', own_inline_css=True)
    assert active_content('<td style="width:exp\\72 ession(x)">x</td>', own_inline_css=True)
    assert active_content('<meta http-equiv="refresh" content="0">', own_elements=frozenset({"meta"}))


# --- everything ingested once, then every output read back ----------------------------------------------------


@dataclass
class Site:
    client: TestClient
    db: Database
    settings: Settings
    vectors: int  # vector feeds that produced posts (0 without ../shared)


def stored_count(db: Database) -> int:
    with db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM posts").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture(scope="module")
def site(hostile_corpus: HostileCorpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = api_settings(hostile_corpus.url, tmp_path_factory.mktemp("hostile"), feeds_max_entries=5000,
                            fetch_concurrency=8, api_max_limit=100)
    own = [hostile_corpus.outcomes[p] for p in [*OWN_FEEDS, DEEP_PATH]]
    assert [o.outcome for o in own] == ["ok"] * len(own), [o.describe() for o in own]
    assert not hostile_corpus.vectors or hostile_corpus.ok_vectors > 300
    with Database(hostile_corpus.url, max_size=12) as db, TestClient(build_web_app(settings, db)) as client:
        yield Site(client, db, settings, hostile_corpus.ok_vectors)


def assert_clean(where: str, fragment: str, problems: list[str]) -> None:
    problems.extend(f"{where}: {p}" for p in active_content(fragment))


def test_api_html_fields_are_inert(site: Site) -> None:
    listed: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "100"}
    while True:
        page = site.client.get("/api/v1/posts", params=params)
        assert page.status_code == 200, page.text
        listed += page.json()["items"]
        if not page.json()["next_cursor"]:
            break
        params["cursor"] = page.json()["next_cursor"]
    # vectors sharing a link are one post (linked to each source), so fewer posts than vector feeds
    assert len(listed) == stored_count(site.db) >= 55 + (200 if site.vectors else 0)
    problems: list[str] = []
    shown_as_text = []
    for item in listed:
        assert item["url"] is None or not url_scheme_is_active(item["url"]), item
        detail = site.client.get(f"/api/v1/posts/{item['id']}")
        assert detail.status_code == 200, detail.text
        body = detail.json()
        assert_clean(f"post {item['id']} html", body["html"], problems)
        assert body["url"] is None or body["url"].startswith(("http://", "https://")), body["url"]
        shown_as_text.append(text_and_attributes(body["html"])[0])
    assert not problems, problems[:20]
    atom_text = "<script>alert(1)</script> and <img src=x onerror=alert(2)> are text here"
    assert any(atom_text in t for t in shown_as_text), "Atom A3's type=text markup is kept, escaped, as text"
    [kept] = [item for item in listed if item["title"].startswith(HARMLESS_CONTROLS)]
    assert '<img src="https://img.example/ok.png"' in site.client.get(f"/api/v1/posts/{kept['id']}").json()["html"]


def read_as_html(fmt: str, element: etree._Element) -> bool:
    """Whether a reader may render this element's text as HTML. RSS never says, and readers guess it
    is; Atom says type="html" (escaped once, unescaped by the XML parser). Entry titles and summaries
    are held to the stricter rule in every format: the web layer promises them free of markup."""
    if fmt == "rss":
        return True
    local = etree.QName(element).localname
    return element.get("type") == "html" or (local in ("title", "summary") and
                                              etree.QName(element.getparent()).localname == "entry")


def xml_problems(body: bytes, fmt: str) -> list[str]:
    """Text read as a reader may read it (see read_as_html); live XHTML/SVG/MathML elements; link
    attributes with a script or data URL."""
    problems: list[str] = []
    for element in etree.fromstring(body).iter():
        if not isinstance(element.tag, str):
            continue
        local = etree.QName(element).localname
        if read_as_html(fmt, element):
            assert_clean(f"{fmt} <{local}> text", element.text or "", problems)
        if etree.QName(element).namespace in MARKUP_NAMESPACES:
            problems.append(f"{fmt} <{local}>: live XHTML/SVG/MathML inside the feed")
        for attribute, value in element.attrib.items():
            attr = etree.QName(attribute).localname
            if attr.startswith("on") or (attr in XML_URL_ATTRIBUTES and url_scheme_is_active(value)):
                problems.append(f"{fmt} <{local} {attr}={value[:60]!r}>")
    return problems


def json_problems(value: object, where: str) -> list[str]:
    """JSON Feed: content_html is HTML; item titles and summaries are held to the web layer's promise
    (no markup); every URL field must be a web address. Other strings are plain text by the spec."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in URL_KEYS and isinstance(item, str) and url_scheme_is_active(item):
                found.append(f"{where}.{key}={item[:60]!r}")
            if key in ("content_html", "title", "summary") and ITEM.fullmatch(where) and isinstance(item, str):
                found += [f"{where}.{key}: {p}" for p in active_content(item)]
            found += json_problems(item, f"{where}.{key}")
    elif isinstance(value, list):
        found += [p for i, item in enumerate(value) for p in json_problems(item, f"{where}[{i}]")]
    return found


def test_atom_rss_and_json_feeds_are_inert(site: Site) -> None:
    total = stored_count(site.db)
    problems: list[str] = []
    for fmt, entry in (("atom", "{http://www.w3.org/2005/Atom}entry"), ("rss", "item")):
        response = site.client.get(f"/feeds/{fmt}", params={"limit": "5000"})
        assert response.status_code == 200, response.text
        root = etree.fromstring(response.content)
        assert len(root.findall(f".//{entry}")) == total
        problems += xml_problems(response.content, fmt)
        if fmt == "atom":
            contents = root.findall(".//{http://www.w3.org/2005/Atom}content")
            assert contents and all(c.get("type") == "html" for c in contents)
            assert any('<img src="https://img.example/ok.png"' in (c.text or "") for c in contents)
    response = site.client.get("/feeds/json", params={"limit": "5000"})
    assert response.status_code == 200, response.text
    document = json.loads(response.content)
    assert len(document["items"]) == total
    assert any('<img src="https://img.example/ok.png"' in item.get("content_html", "") for item in document["items"])
    problems += json_problems(document, "json")
    assert not problems, problems[:20]


def test_rss_names_and_the_filter_words_cannot_become_markup(site: Site) -> None:
    """A feed URL's words are quoted in the feed's title: in RSS, which readers may render as HTML,
    they must not come out as markup (nor may source and author names, which other feeds chose)."""
    words = '"<img src=x onerror=alert(1)>" OR <script>alert(2)</script> payload'
    rss = site.client.get("/feeds/rss", params={"limit": "100", "q": words})
    assert rss.status_code == 200, rss.text
    problems = xml_problems(rss.content, "rss")
    assert not problems, problems[:20]
    channel = etree.fromstring(rss.content).find("channel")
    assert channel is not None and "payload" in (channel.findtext("title") or "")
    assert "Hostile  Wire" not in rss.text and "Hostile Wire" in rss.text, "the source name, markup reduced"
    atom = site.client.get("/feeds/atom", params={"limit": "1", "q": words})
    title = etree.fromstring(atom.content).find("{http://www.w3.org/2005/Atom}title")
    assert title is not None and title.get("type") == "text" and "<script>alert(2)</script>" in (title.text or ""), \
        "Atom declares the title text: the words are kept, escaped"


def email_parts(smtp_sink: SmtpSink, address: str) -> tuple[str, str]:
    [message] = smtp_sink.to(address)
    assert message.get_content_type() == "multipart/alternative"
    text, page = (p.get_content() for p in message.iter_parts())
    return text, page


def test_digest_email_is_inert(site: Site, smtp: SmtpSink) -> None:
    settings = digest_settings(site.settings, smtp, public_url="https://digest.example.org",
                               digest_max_items=5000)
    with site.db.connection() as conn:
        reset(conn, "digests")
    ctx = DigestContext.create(settings, site.db)
    active(ctx, "everything@example.org")
    active(ctx, "words@example.org", q='"<script>alert(1)</script>" OR payload')
    report = send_due(ctx, now=later(), force=True)
    assert (report.sent, report.failed) == (2, 0), report.errors
    text, page = email_parts(smtp, "everything@example.org")
    problems = [f"digest html: {p}" for p in active_content(page, own_elements=frozenset({"meta"}),
                                                            own_inline_css=True)]
    shown, attributes = text_and_attributes(page)
    problems += [f"digest link {v[:60]!r}" for v in attributes if url_scheme_is_active(v)]
    # the plain-text part: every bare URL line (what mail clients turn into a link) is a web address
    problems += [f"digest text link {line.strip()[:60]!r}" for line in text.splitlines()
                 if re.fullmatch(r"\s*[A-Za-z][\w+.-]*:\S+", line) and not line.strip().startswith(("http", "mailto:"))]
    assert not problems, problems[:20]
    assert "Payload 31 event handlers" in shown and "Payload 31 event handlers" in text
    titled = "<script>alert('title')</script> Payload 41"
    with site.db.connection() as conn:  # a digest shows a story by one of its posts' titles
        titles = [t for (t,) in conn.execute(
            "SELECT p.title FROM posts p LEFT JOIN post_story_keys k ON k.post_id = p.id "
            "WHERE k.story_id = (SELECT o.story_id FROM post_story_keys o JOIN posts t ON t.id = o.post_id "
            "WHERE t.title LIKE %(t)s) OR p.title LIKE %(t)s", {"t": "%Payload 41%"})]
    shown_titles = [t for t in titles if t in text]
    assert any(titled in t for t in titles) and shown_titles, titles
    assert all(t in shown for t in shown_titles), "a hostile title is shown as text: escaped in HTML, as is in text"
    assert "Hostile <script>alert('channel')</script> Wire" in shown, "the source name, escaped"
    text, page = email_parts(smtp, "words@example.org")
    assert active_content(page, own_elements=frozenset({"meta"}), own_inline_css=True) == []
    assert '"<script>alert(1)</script>" OR payload' in text_and_attributes(page)[0], "the filter's words, escaped"
