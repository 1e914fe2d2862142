# ruff: noqa: F811  (pytest fixtures are imported, then named as parameters)
"""XML tricks in an imported OPML file are refused, never expanded or followed.

An OPML file is someone else's export. Entity declarations (billion laughs, SYSTEM entities
reading file:///etc/passwd, parameter entities, an external DTD) must end as a clear
ConfigError, with nothing expanded, nothing read and no socket opened. Every reference to
"outside" points at the local test server, whose request log proves nothing was fetched.

The import paths: `read_opml` and the CLI's `aggregator feeds import-opml` (the API has no OPML
import). Feed bodies go through feedparser instead: its entity bombs are covered in
tests/test_parse.py and tests/test_pipeline.py; external entities in a feed are checked here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.errors import ConfigError, ParseError
from aggregator.ingest.parse import parse_and_normalize
from aggregator.sources.files import read_opml
from tests.support.environment import use_cli_environment
from tests.support.feedserver import FeedServer, connect_log, feed_server  # noqa: F401  (fixtures)

BODY = '<opml version="2.0"><head><title>t</title></head><body>{outlines}</body></opml>'
FEED = '<outline text="{text}" type="rss" xmlUrl="https://feeds.example/{path}"/>'


def _laughs(levels: int = 9) -> str:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, levels + 1)]
    return "<!DOCTYPE opml [" + "".join(entities) + "]>"


# name -> (DOCTYPE, the outline's text, what the refusal says); {outside} is a URL on the test server
HOSTILE = {
    "billion laughs": (_laughs(), "&lol9;", "declares the entity 'lol0'"),
    "SYSTEM entity, local file": ('<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;",
                                  "declares the entity 'xxe'"),
    "SYSTEM entity, URL": ('<!DOCTYPE opml [<!ENTITY xxe SYSTEM "{outside}">]>', "&xxe;",
                           "declares the entity 'xxe'"),
    "parameter entity": ('<!DOCTYPE opml [<!ENTITY % dtd SYSTEM "{outside}"> %dtd;]>', "feed",
                         "declares the entity 'dtd'"),
    "unparsed entity": ('<!DOCTYPE opml [<!NOTATION n SYSTEM "x"><!ENTITY u SYSTEM "{outside}" NDATA n>]>',
                        "feed", "declares the entity 'u'"),
    "external DTD": ('<!DOCTYPE opml SYSTEM "{outside}">', "feed", "external DTD or entity ({outside})"),
    "external DTD, public id": ('<!DOCTYPE opml PUBLIC "-//Evil//DTD//EN" "{outside}">', "feed",
                                "external DTD or entity ({outside})"),
}
# What the server would hand out if anything fetched it: text that must never appear.
EVIL_DTD = b'<!ENTITY xxe "INJECTED-FROM-OUTSIDE"><!ENTITY % nested "<!ENTITY leak \'INJECTED\'>"> %nested;'

BENIGN = {
    "plain DOCTYPE": "<!DOCTYPE opml>",
    "internal subset without entities": '<!DOCTYPE opml [<!ELEMENT opml ANY><!ATTLIST outline xmlUrl CDATA #IMPLIED>]>',
    "no DOCTYPE, character references": "",
}


def opml(doctype: str, text: str = "feed", outside: str = "") -> bytes:
    body = BODY.format(outlines=FEED.format(text=text, path="a") + FEED.format(text="B &amp; C", path="b"))
    return f'<?xml version="1.0" encoding="utf-8"?>\n{doctype}\n{body}'.replace("{outside}", outside).encode()


@pytest.fixture
def outside(feed_server: FeedServer) -> str:
    feed_server.serve("/evil.dtd", EVIL_DTD, headers={"Content-Type": "application/xml-dtd"})
    return feed_server.url("/evil.dtd")


@pytest.mark.parametrize(("doctype", "text", "says"), HOSTILE.values(), ids=HOSTILE.keys())
def test_read_opml_refuses_entities_and_external_references(
    doctype: str, text: str, says: str, outside: str, feed_server: FeedServer, connect_log: list[tuple[str, int]]
) -> None:
    with pytest.raises(ConfigError) as refused:
        read_opml(opml(doctype, text, outside))
    message = str(refused.value)
    assert message.startswith("OPML file refused") and says.format(outside=outside) in message
    assert "INJECTED" not in message and "root:" not in message
    assert connect_log == [] and len(feed_server.requests) == 0


@pytest.mark.parametrize("doctype", BENIGN.values(), ids=BENIGN.keys())
def test_read_opml_accepts_a_plain_doctype(doctype: str) -> None:
    specs = read_opml(opml(doctype))
    assert [(s.url, s.name) for s in specs] == [("https://feeds.example/a", "feed"),
                                                ("https://feeds.example/b", "B & C")]


def test_read_opml_survives_nesting_100000_levels_deep() -> None:
    """Walking a tree that deep recursively fails (RecursionError); the reader builds no tree."""
    depth = 100_000
    data = ('<opml version="2.0"><body>' + '<outline text="f">' * depth
            + '<outline text="in" xmlUrl="https://feeds.example/in"/>' + "</outline>" * depth + "</body></opml>")
    assert [(s.url, s.name) for s in read_opml(data.encode(), max_outlines=depth + 1)] == [
        ("https://feeds.example/in", "in")]


def test_read_opml_stops_at_the_outline_cap() -> None:
    data = BODY.format(outlines=FEED.format(text="x", path="a") * 11).encode()
    assert len(read_opml(data, max_outlines=11)) == 11
    with pytest.raises(ConfigError, match="more than 10 outlines"):
        read_opml(data, max_outlines=10)


def test_read_opml_refuses_another_document_type() -> None:
    with pytest.raises(ConfigError, match=r"not an OPML file: its root element is <rss>"):
        read_opml(b'<rss version="2.0"><outline xmlUrl="https://feeds.example/a"/></rss>')


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database, tmp_path: Path) -> Iterator[None]:
    use_cli_environment(monkeypatch, settings.database_url or "", tmp_path)
    yield


def stored_urls(db: Database) -> list[str]:
    with db.connection() as conn:
        return [row.source.url for row in sources_db.list_with_health(conn, include_disabled=True)]


@pytest.mark.parametrize(("doctype", "text", "says"), HOSTILE.values(), ids=HOSTILE.keys())
def test_cli_import_refuses_hostile_opml_and_adds_nothing(
    doctype: str, text: str, says: str, cli_env: None, db: Database, outside: str, feed_server: FeedServer,
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hostile.opml"
    path.write_bytes(opml(doctype, text, outside))
    assert main(["feeds", "import-opml", str(path)]) == 1
    captured = capsys.readouterr()
    assert "aggregator: OPML file refused" in captured.err and says.format(outside=outside) in captured.err
    assert "INJECTED" not in captured.out + captured.err
    assert stored_urls(db) == []
    assert len(feed_server.requests) == 0


def test_cli_import_of_a_plain_doctype_still_works(cli_env: None, db: Database, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.opml"
    path.write_bytes(opml(BENIGN["plain DOCTYPE"]))
    assert main(["feeds", "import-opml", str(path)]) == 0
    assert "imported 2 feed(s)" in capsys.readouterr().out
    assert sorted(stored_urls(db)) == ["https://feeds.example/a", "https://feeds.example/b"]


FEED_XXE = {
    "SYSTEM entity, local file": ('<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;"),
    "SYSTEM entity, URL": ('<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{outside}">]>', "&xxe;"),
    "parameter entity": ('<!DOCTYPE rss [<!ENTITY % dtd SYSTEM "{outside}"> %dtd;]>', "&leak;"),
    "external DTD": ('<!DOCTYPE rss SYSTEM "{outside}">', "&xxe;"),
}


@pytest.mark.parametrize(("doctype", "reference"), FEED_XXE.values(), ids=FEED_XXE.keys())
def test_feed_parsing_never_reads_external_entities(
    doctype: str, reference: str, outside: str, feed_server: FeedServer, connect_log: list[tuple[str, int]]
) -> None:
    """Whether the feed is read or refused, nothing from outside it ends up in a post."""
    body = (f'<?xml version="1.0"?>\n{doctype.replace("{outside}", outside)}\n<rss version="2.0"><channel>'
            f"<title>T</title><item><title>before {reference} after</title><guid>g1</guid>"
            f"<description>text {reference} end</description></item></channel></rss>").encode()
    try:
        content = parse_and_normalize(body, url="https://feeds.example/rss", now=datetime.now(UTC))
    except ParseError as exc:  # a refusal is fine, as long as it carries nothing from outside
        assert "INJECTED" not in str(exc) and "root:" not in str(exc)
    else:
        text = " ".join(p.title + " " + p.text for p in content.posts)
        assert "INJECTED" not in text and "root:" not in text
    assert connect_log == [] and len(feed_server.requests) == 0
