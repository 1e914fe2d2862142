"""Table-driven tests of the pure normalizing functions (no files, no network) and the seed page's text."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aggregator.ingest.models import Post
from aggregator.ingest.normalize import (
    AUTHOR_MAX_CHARS,
    CATEGORIES_MAX,
    CATEGORY_MAX_CHARS,
    TITLE_MAX_CHARS,
    URL_MAX_BYTES,
    canonical_url,
    cap_fields,
    categories,
    collapse_duplicates,
    content_hash,
    cut_warning,
    dedup_key,
    entry_guid,
    entry_to_post,
    feed_meta,
    language,
    newest,
    summarize,
    to_utc,
)
from aggregator.textclean import clean_text, html_to_text, sanitize_html, too_deeply_nested, truncate_words

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
FEED = "https://example.com/feed.xml"


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("HTTP://Example.COM:80/a/b?x=1#frag", None, "http://example.com/a/b?x=1"),
        ("https://example.com:443", None, "https://example.com/"),
        ("https://example.com:8443/p", None, "https://example.com:8443/p"),
        ("https://e.com/p?utm_source=rss&utm_medium=feed&id=7", None, "https://e.com/p?id=7"),
        ("https://e.com/p?UTM_Campaign=x&fbclid=1&gclid=2&mc_cid=3&mc_eid=4&yclid=5&_ga=6", None, "https://e.com/p"),
        ("https://blog.blogspot.com/2022/01/post.html?m=1", None, "https://blog.blogspot.com/2022/01/post.html"),
        ("https://wp.example.com/?m=202401", None, "https://wp.example.com/?m=202401"),
        ("https://e.com/search?q=a+b&sort=new", None, "https://e.com/search?q=a+b&sort=new"),
        ("https://e.com/p?a=%2F&&b=", None, "https://e.com/p?a=%2F&b="),
        ("/2024/03/post.html", "https://news.example.org/feed/", "https://news.example.org/2024/03/post.html"),
        ("../up.html", "https://e.com/a/b/feed", "https://e.com/a/up.html"),
        ("//cdn.example.com/i.png", "https://e.com/", "https://cdn.example.com/i.png"),
        ("  https://e.com/\n  spaced  ", None, "https://e.com/spaced"),
        ("https://[2001:db8::1]:443/x", None, "https://[2001:db8::1]/x"),
        ("https://E.com./x", None, "https://e.com/x"),
        ("javascript:alert(1)", None, None),
        ("mailto:a@b.c", None, None),
        ("ftp://e.com/file", None, None),
        ("relative/only", None, None),
        ("https://[::1/broken", None, None),
        ("http://e.com:99999/", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_canonical_url(url: str | None, base: str | None, expected: str | None) -> None:
    assert canonical_url(url, base) == expected


def test_canonical_url_keeps_the_fragment_only_when_asked() -> None:
    assert canonical_url("https://e.com/changelog#v1.2", keep_fragment=True) == "https://e.com/changelog#v1.2"
    assert canonical_url("https://e.com/changelog#v1.2") == "https://e.com/changelog"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (time.struct_time((2024, 3, 4, 5, 30, 0, 0, 64, 0)), datetime(2024, 3, 4, 5, 30, tzinfo=UTC)),
        (datetime(2024, 3, 4, 9, 30, tzinfo=timezone(timedelta(hours=4))), datetime(2024, 3, 4, 5, 30, tzinfo=UTC)),
        (datetime(2024, 3, 4, 5, 30), datetime(2024, 3, 4, 5, 30, tzinfo=UTC)),
        (datetime(2030, 1, 1, tzinfo=UTC), NOW),
        (NOW + timedelta(minutes=3), NOW + timedelta(minutes=3)),  # within clock skew: kept
        (NOW + timedelta(hours=2), NOW),
        (time.struct_time((2024, 2, 30, 0, 0, 0, 0, 1, 0)), None),
        (None, None),
    ],
)
def test_to_utc(value: time.struct_time | datetime | None, expected: datetime | None) -> None:
    result = to_utc(value, now=NOW)
    assert result == expected
    assert result is None or result.tzinfo is UTC


@pytest.mark.parametrize(
    ("html", "present", "absent"),
    [
        ("<p>hi<script>alert(1)</script></p>", ["<p>hi</p>"], ["script", "alert"]),
        ('<img src="https://e.com/i.png" onerror="alert(1)">', ['src="https://e.com/i.png"'], ["onerror", "alert"]),
        ('<a href="javascript:alert(1)">x</a>', [">x</a>", 'rel="noopener noreferrer nofollow"'], ["javascript"]),
        ('<a href="vbscript:msgbox">x</a><a href="data:text/html,x">y</a>', [">x</a>"], ["vbscript", "data:"]),
        ("<style>p{color:red}</style><p style='color:red'>t</p>", ["<p>t</p>"], ["style", "color"]),
        ('<iframe src="https://evil.example/">fallback</iframe>ok', ["ok"], ["iframe", "fallback", "evil"]),
        ("<object data='x.swf'><embed src='x.swf'></object><form action='/x'><input></form>", [], ["object", "embed"]),
        ('<a href="/p/1">rel</a>', ['href="https://example.com/p/1"'], []),
        ('<img src="//cdn.example.com/i.png">', ['src="https://cdn.example.com/i.png"'], []),
        ('<div onclick="x()" onmouseover="y()">t</div>', ["<div>t</div>"], ["onclick", "onmouseover"]),
    ],
)
def test_sanitize_html(html: str, present: list[str], absent: list[str]) -> None:
    safe = sanitize_html(html, "https://example.com/posts/1")
    for fragment in present:
        assert fragment in safe
    for fragment in absent:
        assert fragment not in safe.lower()


def test_sanitize_without_a_base_drops_relative_urls() -> None:
    assert "href" not in sanitize_html('<a href="/p">x</a>', None)
    assert "href" not in sanitize_html('<a href="/p">x</a>', "not a url")


def test_absurdly_nested_html_is_shown_as_text() -> None:
    deep = "<div>x" * 6000
    assert too_deeply_nested(deep)
    assert not too_deeply_nested("<div>x</div>" * 6000)
    assert sanitize_html(deep + "<script>bad()</script>").startswith("<p>x x x")
    assert "bad" not in sanitize_html(deep + "<script>bad()</script>")


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("Line<br>next<br/>last", "Line\nnext\nlast"),
        ("A&nbsp;&amp;&nbsp;B &lt;tag&gt; &quot;q&quot;", 'A & B <tag> "q"'),
        ("<ul><li>a</li><li>b</li></ul>", "a\nb"),
        ("  many   \n\n  spaces\tand\nnewlines ", "many spaces and newlines"),
        ("<h2>Head</h2>body <b>bold</b><i>it</i>", "Head\n\nbody boldit"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("zero\u200bwidth\u00adsoft", "zerowidthsoft"),
        ("<div><div><p>deep</p></div></div><p></p><p></p><p>x</p>", "deep\n\nx"),
        ('<a title="a>b" href="https://e.com/">link</a>', "link"),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(sanitize_html(html, "https://e.com/")) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Body.\n\nNo comments:\n\nPost a Comment", "Body."),
        ("Body.\n3 comments:\nNewer Post Older Post Home", "Body."),
        ("Body.\nSubscribe to: Post Comments (Atom)", "Body."),
        ("Posted by Paul Goble at 7:08 AM\nBody.", "Body."),
        ("Posted by paul goble at 10:00 AM Email This BlogThis! Share to Twitter Share to Facebook\nBody.", "Body."),
        ("Body.\nEmail ThisBlogThis!Share to TwitterShare to FacebookShare to Pinterest", "Body."),
        ("Body.\nThe post Talks resume appeared first on Caspian Wire.", "Body."),
        ("There were no comments: officials declined.", "There were no comments: officials declined."),
        ("He posted by mail at 7:08 AM.", "He posted by mail at 7:08 AM."),
        ("Home front news", "Home front news"),
    ],
)
def test_clean_text_strips_page_boilerplate(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def test_the_seed_post_loses_its_comment_boilerplate(shared_data: Path) -> None:
    page = (shared_data / "seed" / "window-on-eurasia-2022-01-07.txt").read_text(encoding="utf-8")
    text = clean_text(page)
    assert not text.endswith(("Post a Comment", "No comments:"))
    assert "No comments:" not in text.splitlines()
    assert "Staunton, Nov. 17 – With the victory of the Taliban" in text
    assert text.endswith("He knows Russia is the only place he can get such advanced military technology.")
    assert "\n\n\n" not in text and "  " not in text


@pytest.mark.parametrize(
    ("guid", "expected"),
    [
        ("tag:blogger.com,1999:blog-123.post-456", "tag:blogger.com,1999:blog-123.post-456"),
        ("  tag:blogger.com,1999:blog-123.post-456\n", "tag:blogger.com,1999:blog-123.post-456"),
        ("TAG:example.org,2024:entry-1", "tag:example.org,2024:entry-1"),
        ("urn:uuid:1225C695-CFB8-4EBB-AAAA-80DA344EFA6A", "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"),
        ("HTTPS://News.Example.org/a?utm_source=x", "https://news.example.org/a"),
        ("https://www.bbc.com/news/articles/c1#2", "https://www.bbc.com/news/articles/c1"),
        ("https://e.com/changelog#v1.2", "https://e.com/changelog#v1.2"),
        ("cw-10001", f"{FEED}#cw-10001"),
        ("246836 at http://www.whitehouse.gov", f"{FEED}#246836 at http://www.whitehouse.gov"),
        ("urn:isbn:0451450523", f"{FEED}#urn:isbn:0451450523"),
    ],
)
def test_dedup_key(guid: str, expected: str) -> None:
    assert dedup_key(guid.strip(), FEED) == expected


def test_feed_scoped_keys_use_the_canonical_feed_url() -> None:
    assert dedup_key("42", "HTTPS://Example.com:443/feed.xml?utm_source=x") == f"{FEED}#42"


def test_entry_guid_falls_back_to_link_then_a_stable_hash() -> None:
    assert entry_guid(" id-1 ", "https://e.com/1", "T", None) == "id-1"
    assert entry_guid(None, "https://e.com/1", "T", None) == "https://e.com/1"
    hashed = entry_guid(None, None, "Title", NOW)
    assert hashed.startswith("sha256:") and hashed == entry_guid("", "  ", "Title", NOW)
    assert hashed != entry_guid(None, None, "Title", NOW + timedelta(days=1))


@pytest.mark.parametrize(
    ("summary", "text", "expected"),
    [
        ("", "Short text.", "Short text."),
        ("A teaser.", "The full body.", "A teaser."),
        ("Same.", "Same.", "Same."),
        ("", "word " * 100, ("word " * 60).strip() + "…"),
        ("", "x" * 400, "x" * 300 + "…"),
        ("", "Line one\n\nline two", "Line one line two"),
    ],
)
def test_summarize(summary: str, text: str, expected: str) -> None:
    result = summarize(summary, text)
    assert result == expected
    assert len(result) <= 301


def test_truncate_words_cuts_at_a_word_boundary() -> None:
    assert truncate_words("alpha beta gamma delta", 12) == "alpha beta…"
    assert truncate_words("alpha, beta gamma", 8) == "alpha…"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([{"term": "Kazakhstan", "scheme": "http://www.blogger.com/atom/ns#"}], ("Kazakhstan",)),
        (
            [
                {
                    "term": "http://schemas.google.com/blogger/2008/kind#post",
                    "scheme": "http://schemas.google.com/g/2005#kind",
                },
                {"term": " Russia ", "scheme": None},
                {"term": "russia"},
                {"term": "", "label": "Labelled"},
                {"term": None},
            ],
            ("Russia", "Labelled"),
        ),
        (None, ()),
    ],
)
def test_categories(tags: list[dict[str, Any]] | None, expected: tuple[str, ...]) -> None:
    assert categories(tags) == expected


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [(("en-US",), "en"), (("EN",), "en"), ((None, "ru-RU"), "ru"), (("x-klingon", "de_AT"), "de"), ((None, ""), None)],
)
def test_language(candidates: tuple[str | None, ...], expected: str | None) -> None:
    assert language(*candidates) == expected


def test_content_hash_changes_with_each_part() -> None:
    base = content_hash("T", "text", "https://e.com/1")
    assert base == content_hash("T", "text", "https://e.com/1")
    assert len({base, content_hash("T2", "text", "https://e.com/1"), content_hash("T", "text!", "https://e.com/1"),
                content_hash("T", "text", "https://e.com/2"), content_hash("T", "text", None)}) == 5  # fmt: skip


def post(key: str, updated: datetime | None, title: str) -> Post:
    return Post(key, key, None, title, None, None, updated, (), "", "", "", None, "h")


def test_collapse_duplicates_keeps_the_freshest_in_first_seen_order() -> None:
    posts = [
        post("a", NOW, "a-old"),
        post("b", None, "b"),
        post("a", NOW + timedelta(1), "a-new"),
        post("b", None, "b2"),
    ]
    kept, dropped = collapse_duplicates(posts)
    assert [p.title for p in kept] == ["a-new", "b"]
    assert dropped == 2


def entry(**fields: Any) -> dict[str, Any]:
    return {"title_detail": {"type": "text/plain", "value": fields.pop("title", "")}, **fields}


def test_richest_html_wins_over_summary_and_plain_text() -> None:
    result = entry_to_post(
        entry(
            title="T",
            link="https://e.com/1",
            summary_detail={"type": "text/html", "value": "<p>teaser</p>"},
            content=[
                {"type": "text/plain", "value": "plain body that is long, longer than the HTML one"},
                {"type": "text/html", "value": "<p>html <b>body</b></p>"},
            ],
        ),
        feed_url=FEED,
        now=NOW,
    )
    assert result is not None
    assert (result.html, result.text, result.summary) == ("<p>html <b>body</b></p>", "html body", "teaser")


def test_an_entry_with_nothing_to_show_is_skipped() -> None:
    assert entry_to_post(entry(id="only-an-id"), feed_url=FEED, now=NOW) is None
    assert entry_to_post(entry(link="javascript:void(0)"), feed_url=FEED, now=NOW) is None


def test_missing_published_falls_back_to_updated_and_author_to_the_feed() -> None:
    updated = time.struct_time((2024, 1, 2, 3, 4, 5, 0, 2, 0))
    result = entry_to_post(
        entry(title="T", link="https://e.com/1", updated_parsed=updated, author_detail={"name": "noreply@blogger.com"}),
        feed_url=FEED,
        now=NOW,
        feed_author={"name": "Feed Author"},
    )
    assert result is not None
    assert result.published_at == result.updated_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert result.author == "Feed Author"
    assert result.dedup_key == result.guid == "https://e.com/1"


def test_relative_urls_in_content_resolve_against_the_entry_link_unless_xml_base_says_otherwise() -> None:
    body = {"type": "text/html", "value": '<a href="img/a.png">a</a>', "base": FEED}
    by_link = entry_to_post(entry(title="T", link="/2024/p.html", content=[body]), feed_url=FEED, now=NOW)
    declared = {**body, "base": "https://static.example.net/docs/"}
    by_base = entry_to_post(entry(title="T", link="/2024/p.html", content=[declared]), feed_url=FEED, now=NOW)
    assert by_link is not None and by_base is not None
    assert 'href="https://example.com/2024/img/a.png"' in by_link.html
    assert 'href="https://static.example.net/docs/img/a.png"' in by_base.html


def test_feed_meta() -> None:
    meta = feed_meta(
        {
            "title_detail": {"type": "text/html", "value": "Blog &amp; <b>Notes</b>"},
            "link": "/",
            "ttl": " 60 ",
            "links": [{"rel": "next", "href": "/feeds/posts/default?start-index=26&max-results=25"}],
            "opensearch_totalresults": "12026",
        },
        "https://blog.example.com/feeds/posts/default",
    )
    assert meta.title == "Blog & Notes"
    assert meta.site_url == "https://blog.example.com/"
    assert meta.ttl_minutes == 60
    assert meta.next_url == "https://blog.example.com/feeds/posts/default?start-index=26&max-results=25"
    assert meta.total_results == 12026
    assert feed_meta({"ttl": "soon", "opensearch_totalresults": "-1"}, FEED).ttl_minutes is None


# --- caps: what one entry may store ---------------------------------------------------------------------

LONG_PATH = "https://e.com/" + "a" * (URL_MAX_BYTES - len("https://e.com/"))  # exactly the cap
CYRILLIC_PATH = "https://e.com/" + "я" * 1_100  # 1,114 characters, 2,214 bytes


def capped(**fields: Any) -> Post:
    base = Post("k", "k", "https://e.com/1", "Title", "Author", NOW, None, ("A", "B"), "", "", "", None, "h")
    return cap_fields(replace(base, **fields))


@pytest.mark.parametrize(
    ("fields", "expected", "cut"),
    [
        ({}, {}, ()),
        ({"title": "w" * TITLE_MAX_CHARS}, {"title": "w" * TITLE_MAX_CHARS}, ()),
        ({"title": "word " * 20_000}, {"title": ("word " * 200).strip() + "…"}, ("title",)),
        ({"title": "x" * 5_000}, {"title": "x" * (TITLE_MAX_CHARS - 1) + "…"}, ("title",)),
        ({"author": "N" * (AUTHOR_MAX_CHARS + 1)}, {"author": "N" * (AUTHOR_MAX_CHARS - 1) + "…"}, ("author",)),
        ({"author": None}, {"author": None}, ()),
        ({"categories": tuple(f"c{n}" for n in range(CATEGORIES_MAX + 7))},
         {"categories": tuple(f"c{n}" for n in range(CATEGORIES_MAX))}, ("categories",)),
        ({"categories": ("k" * 300, "short")}, {"categories": ("k" * (CATEGORY_MAX_CHARS - 1) + "…", "short")},
         ("categories",)),
        ({"categories": ("k" * 300 + "1", "k" * 300 + "2")},  # the same label once cut: shown once
         {"categories": ("k" * (CATEGORY_MAX_CHARS - 1) + "…",)}, ("categories",)),
        ({"url": LONG_PATH}, {"url": LONG_PATH}, ()),
        ({"url": LONG_PATH + "b"}, {"url": None}, ("url",)),
        ({"url": CYRILLIC_PATH}, {"url": None}, ("url",)),  # bytes count, not characters
        ({"title": "t" * 2_000, "url": LONG_PATH + "b"}, {"title": "t" * (TITLE_MAX_CHARS - 1) + "…", "url": None},
         ("title", "url")),
    ],
    ids=["within", "title-at-cap", "title-words", "title-one-word", "author", "no-author", "category-count",
         "category-length", "category-collapse", "url-at-cap", "url-over", "url-cyrillic", "two-fields"],
)
def test_cap_fields(fields: dict[str, Any], expected: dict[str, Any], cut: tuple[str, ...]) -> None:
    result = capped(**fields)
    assert {name: getattr(result, name) for name in expected} == expected
    assert result.fields_cut == cut
    assert len(result.title) <= TITLE_MAX_CHARS


def test_a_huge_entry_is_cut_to_size_and_says_so() -> None:
    post = entry_to_post(
        entry(title="word " * 20_000, link="https://e.com/" + "p" * 5_000, author_detail={"name": "A" * 999},
              tags=[{"term": f"label {n}"} for n in range(500)]),
        feed_url=FEED, now=NOW,
    )
    assert post is not None
    assert len(post.title) <= TITLE_MAX_CHARS and post.title.endswith("…")
    assert post.url is None and len(post.guid.encode()) <= URL_MAX_BYTES
    assert len(post.dedup_key.encode()) <= URL_MAX_BYTES
    assert post.author is not None and len(post.author) <= AUTHOR_MAX_CHARS
    assert len(post.categories) == CATEGORIES_MAX
    assert post.fields_cut == ("title", "author", "categories", "url")


@pytest.mark.parametrize(
    ("guid", "hashed"),
    [
        ("id-" + "1" * (URL_MAX_BYTES - 3), False),
        ("id-" + "1" * (URL_MAX_BYTES - 2), True),
        ("я" * (URL_MAX_BYTES // 2 + 1), True),
        ("https://e.com/" + "p" * URL_MAX_BYTES, True),
    ],
    ids=["at-cap", "over", "over-in-bytes", "url-id"],
)
def test_an_over_long_id_is_named_by_its_hash(guid: str, hashed: bool) -> None:
    chosen = entry_guid(guid, None, "T", None)
    assert chosen.startswith("sha256:") is hashed
    assert chosen == entry_guid(guid, "https://e.com/other", "T", None)  # stable: the same entry, the same id
    assert len(dedup_key(chosen, FEED).encode()) <= URL_MAX_BYTES


def test_a_feed_scoped_key_over_the_cap_is_hashed_too() -> None:
    key = dedup_key("i" * (URL_MAX_BYTES - 10), FEED)  # the id fits; with the feed URL before it, it does not
    assert key.startswith("sha256:") and key == dedup_key("i" * (URL_MAX_BYTES - 10), FEED)


def dated(n: int, published: datetime | None, updated: datetime | None = None) -> Post:
    return replace(post(f"k{n}", updated, f"p{n}"), published_at=published)


@pytest.mark.parametrize(
    ("dates", "limit", "kept", "left_out"),
    [
        ([3, 1, 2], 5, [0, 1, 2], 0),
        ([3, 1, 2], 3, [0, 1, 2], 0),
        ([1, 3, 2], 2, [1, 2], 1),  # the newest two, in document order
        ([1, None, 3, None, 2], 3, [0, 2, 4], 2),  # undated entries after every dated one
        ([None, None, None], 2, [0, 1], 1),  # none dated: the first in the document
        ([2, 2, 2, 1], 2, [0, 1], 2),  # ties keep document order
        ([], 1, [], 0),
    ],
)
def test_newest(dates: list[int | None], limit: int, kept: list[int], left_out: int) -> None:
    posts = [dated(i, NOW + timedelta(days=d) if d is not None else None) for i, d in enumerate(dates)]
    result, dropped = newest(posts, limit)
    assert [p.title for p in result] == [f"p{i}" for i in kept]
    assert dropped == left_out


def test_newest_ranks_an_entry_by_its_update_when_it_has_no_publication_date() -> None:
    posts = [dated(0, NOW), dated(1, None, updated=NOW + timedelta(days=1))]
    assert [p.title for p in newest(posts, 1)[0]] == ["p1"]


def test_cut_warning() -> None:
    assert cut_warning([capped(), capped()]) is None
    warning = cut_warning([capped(title="t" * 2_000), capped(title="t" * 2_000, url=LONG_PATH + "b"), capped()])
    assert warning == (f"cut over-long fields: title in 2 entries ({TITLE_MAX_CHARS:,} characters), "
                       f"url in 1 entry (dropped over {URL_MAX_BYTES:,} bytes)")
