"""The web reader in a real browser (Chromium through Playwright) against a real server and database.

Every page visited is also checked for what must never happen: a console error, a script error, a
request to another host. Screenshots of each page at phone and desktop width are written to
test-artifacts/ (TEST_ARTIFACTS), with a check that nothing overflows sideways or is cut off, and
axe-core (a test asset, tests/web/assets/) finds no serious or critical accessibility violation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.web.conftest import ARTIFACTS, SURGE_DAYS_AGO, LiveSite

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parent / "assets" / "axe.min.js"
WIDTHS = {"phone": 360, "desktop": 1440}


class Watched:
    """A page whose console errors, uncaught errors and requests are recorded."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.host = urlsplit(base).netloc
        self.problems: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("request", self._request)

    def _request(self, request: Any) -> None:
        self.requests.append(request.url)
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != self.host:
            self.problems.append(f"request to another host: {request.url}")


@pytest.fixture
def watched(browser: Any, site: LiveSite) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=site.base,
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    seen = Watched(page, site.base)
    yield seen
    context.close()
    assert seen.problems == []


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def post_titles(page: Any) -> list[str]:
    return page.locator("a.post-link").all_inner_texts()


def test_clicking_a_facet_filters_the_list_counts_and_url_and_back_restores(watched: Watched) -> None:
    page = watched.page
    page.goto("/")
    everything = post_titles(page)
    total = page.locator("p.count").inner_text()
    page.locator("section[aria-labelledby=facet-countries] a", has_text="Afghanistan").first.click()
    page.wait_for_url(re.compile(r"country=AF"))
    page.wait_for_function("() => document.querySelector('h1').textContent.includes('Afghanistan')")
    filtered = post_titles(page)
    assert filtered and filtered != everything
    assert page.locator("p.count").inner_text() != total
    assert page.locator(".active-filters a", has_text="Afghanistan").count() == 1
    # the facet is now marked as chosen, and every listed post is about it
    assert page.locator("section[aria-labelledby=facet-countries] a[aria-current]", has_text="Afghanistan").count() == 1
    page.go_back()
    page.wait_for_url(lambda url: "country=" not in url)
    page.wait_for_function("() => document.querySelector('h1').textContent.trim() === 'Latest'")
    assert post_titles(page) == everything


def test_the_filter_lives_in_the_url_and_matches_the_api(watched: Watched, site: LiveSite) -> None:
    page = watched.page
    page.goto("/?topic=border-security&country=KZ")
    shown = page.locator("a.post-link").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    api = page.request.get("/api/v1/posts?topic=border-security&country=KZ&limit=30").json()
    assert shown == [f"/posts/{item['id']}" for item in api["items"]]


def test_a_views_filter_counts_arrive_after_its_posts_with_the_map(watched: Watched) -> None:
    """A view the rollup cannot count (country + topic + language) shows its posts with the filters
    uncounted; htmx then swaps in the counts and the map, without moving the page or changing its URL."""
    page = watched.page
    page.goto("/?country=KZ&topic=terrorism&lang=en")
    page.wait_for_selector("#facets .n")
    assert page.locator("#facets[hx-get]").count() == 0
    assert page.locator("svg.map use").count() > 10
    assert page.locator("section[aria-labelledby=facet-topics] a[aria-current]").count() == 1
    assert query_of(page.url) == {"country": ["KZ"], "topic": ["terrorism"], "lang": ["en"]}
    assert any("/static/region-map.svg" in url for url in watched.requests)


def test_counts_that_arrive_later_leave_the_keyboard_focus_where_it_is(watched: Watched) -> None:
    """The counts panel is held back until the reader has moved with the keyboard; its arrival must
    not pull the focus away from the post she is on."""
    page = watched.page
    held: list[Any] = []
    page.route(re.compile(r"/filters\?"), lambda route: held.append(route))
    page.goto("/?country=KZ&topic=terrorism&lang=en")
    page.wait_for_function("() => document.querySelector('#facets.htmx-request') !== null")
    assert held, "the counts panel was not requested"
    page.keyboard.press("j")
    on = page.evaluate("document.activeElement.getAttribute('href')")
    assert on and on.startswith("/posts/")
    held[0].continue_()
    page.wait_for_selector("#facets .n")
    assert page.evaluate("document.activeElement.getAttribute('href')") == on


def test_search_highlights_the_matches(watched: Watched) -> None:
    page = watched.page
    page.goto("/")
    page.fill("#q", "corruption")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r"q=corruption"))
    page.wait_for_selector("a.post-link mark")
    marks = page.locator("a.post-link mark, p.summary mark").all_inner_texts()
    assert marks and all(m.lower().startswith("corrupt") or m.lower().startswith("brib") for m in marks), marks


def test_the_post_page_highlights_the_evidence_of_its_tags(watched: Watched) -> None:
    page = watched.page
    page.goto("/?country=KZ")
    page.locator("a.post-link").first.click()
    page.wait_for_url(re.compile(r"/posts/\d+$"))
    marks = page.locator(".text mark, h1 mark")
    assert marks.count() > 0
    assert "Kazakhstan" in " ".join(marks.all_inner_texts())
    assert page.locator("table.evidence td a", has_text="Kazakhstan").count() == 1
    assert page.locator("a.original").get_attribute("href").startswith("https://")


def test_the_trend_chart_draws_from_the_rollup_and_marks_the_surge(watched: Watched, site: LiveSite) -> None:
    page = watched.page
    page.goto("/countries/KZ")
    page.wait_for_selector("#trend[data-drawn] canvas")
    drawn = int(page.get_attribute("#trend", "data-drawn") or 0)
    data = page.request.get("/api/v1/trends?country=KZ").json()
    assert drawn == sum(data["total"]) > 100
    assert len(data["surges"]) == 1 and data["surges"][0]["count"] >= 10
    assert {s["name"] for s in data["series"]} >= {"Border security", "Corruption"}


def test_copy_buttons_put_the_feed_url_on_the_clipboard(watched: Watched, site: LiveSite) -> None:
    page = watched.page
    page.goto("/?country=KZ&topic=corruption")
    page.click("button[data-copy=feed-atom]")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"{site.base}/feeds/atom?country=KZ&topic=corruption"
    assert page.request.get(copied).status == 200


def test_daily_email_of_a_view_opens_the_form_prefilled(watched: Watched) -> None:
    page = watched.page
    page.goto("/?country=KZ&topic=corruption&q=court")
    page.click("a.subscribe")
    page.wait_for_url(re.compile(r"/subscribe\?"))
    assert page.is_checked("input[name=country][value=KZ]")
    assert page.is_checked("input[name=topic][value=corruption]")
    assert page.input_value("input[name=q]") == "court"


def test_the_stream_works_with_the_keyboard_alone(watched: Watched) -> None:
    page = watched.page
    page.goto("/")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("militants")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=militants"))
    # the new list has settled when focus moves to it; keys pressed before then act on the old list
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'main'")
    page.wait_for_selector("a.post-link")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("j")
    first = page.evaluate("document.activeElement.getAttribute('href')")
    assert first and first.startswith("/posts/")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/posts/\d+$"))
    # a facet reached by Tab alone: the second skip link jumps past the posts to the filters
    page.goto("/")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the filters"
    page.keyboard.press("Enter")
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('section[aria-labelledby=facet-topics]') !== null"):
            break
    else:
        pytest.fail("no topic facet reachable with Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"topic="))
    # the clicked link was swapped away: focus moves to the new content, and the next Tab shows a ring
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'main'")
    page.keyboard.press("Tab")
    ring = page.evaluate("() => [getComputedStyle(document.activeElement).outlineStyle, "
                         "getComputedStyle(document.activeElement).outlineWidth]")
    assert ring[0] != "none" and ring[1] != "0px", ring


PAGES = ["/", "/?country=KZ&q=border", "/countries/KZ", "/regions/central-asia", "/regions/north-caucasus",
         "/topics/terrorism", "/sources"]


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_fit_the_screen_and_pass_an_accessibility_check(watched: Watched, width: str) -> None:
    page = watched.page
    page.set_viewport_size({"width": WIDTHS[width], "height": 900})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    post = page.request.get("/api/v1/posts?country=KZ&limit=1").json()["items"][0]["id"]
    for path in [*PAGES, f"/posts/{post}"]:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "stream"
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        overflow = page.evaluate(OVERFLOW_CHECK)
        assert overflow == [], (path, width, overflow)
        violations = axe(page)
        assert violations == [], (path, width, violations)


# Sideways scrolling of the page, and boxes whose text is wider than they are while hiding the
# overflow (cut off). Scrollable regions (the sources table) and visually hidden text are fine.
OVERFLOW_CHECK = """() => {
  const found = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) found.push(`page ${root.scrollWidth} > ${root.clientWidth}`);
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (el.closest('.visually-hidden, .skip, svg, .table-wrap, .u-legend, input')) continue;
    if (['hidden', 'clip'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
      found.push(`${el.tagName.toLowerCase()}.${el.className}: ${el.scrollWidth} > ${el.clientWidth}`);
    }
  }
  return found.slice(0, 10);
}"""


def axe(page: Any) -> list[str]:
    """Serious and critical violations of axe-core's WCAG A/AA rules on the page as it is now."""
    page.evaluate(AXE.read_text("utf-8"))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}});
        return r.violations.filter(v => ['serious', 'critical'].includes(v.impact))
                           .map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
    }""")
    return list(result)


def test_the_checks_of_this_module_can_fail(watched: Watched) -> None:
    """Each guard above catches what it is for: a wide box, an inaccessible control, a foreign request."""
    page = watched.page
    page.goto("/")
    page.evaluate("""() => { const d = document.createElement('div'); d.style.width = '5000px';
                             d.textContent = 'wide'; document.body.appendChild(d); }""")
    assert page.evaluate(OVERFLOW_CHECK)
    page.evaluate("""() => { const b = document.createElement('button'); document.body.appendChild(b);
                             const i = document.createElement('input'); document.body.appendChild(i); }""")
    assert any(v.startswith(("button-name", "label")) for v in axe(page))
    seen = Watched(page, "http://127.0.0.1:1")
    page.reload()
    assert any("another host" in p for p in seen.problems)


def test_trend_json_is_exact_before_and_after_a_rollup_refresh(site: LiveSite) -> None:
    """Chart data comes from the rollup; months changed since the last refresh are counted live."""
    import httpx

    from aggregator.web.rollup import refresh_once

    first = httpx.get(f"{site.base}/api/v1/trends?country=KZ").json()
    with site.db.connection() as conn:
        conn.execute("INSERT INTO facet_dirty_months SELECT DISTINCT facet_month(published_at) FROM posts")
    live = httpx.get(f"{site.base}/api/v1/trends?country=KZ").json()
    refresh_once(site.db)
    assert first == live == httpx.get(f"{site.base}/api/v1/trends?country=KZ").json()
    assert first["days"][-1 - SURGE_DAYS_AGO] == first["surges"][0]["day"]
    assert json.dumps(first)  # plain JSON


def test_clicking_a_region_facet_filters_by_the_region_and_back_restores(watched: Watched) -> None:
    page = watched.page
    page.goto("/")
    everything = post_titles(page)
    total = page.locator("p.count").inner_text()
    facet = page.locator("section[aria-labelledby=facet-regions] a", has_text="Central Asia").first
    count = int(facet.locator(".n").inner_text().replace(",", ""))
    facet.click()
    page.wait_for_url(re.compile(r"region=central-asia"))
    page.wait_for_function("() => document.querySelector('h1').textContent.includes('Central Asia')")
    assert page.locator(".active-filters a", has_text="Central Asia").count() == 1
    assert page.locator("section[aria-labelledby=facet-regions] a[aria-current]", has_text="Central Asia").count() == 1
    # the facet's count is what the region shows (the whole stream's mix, before a second filter narrows it)
    api = page.request.get("/api/v1/facets?region=central-asia").json()
    assert count == sum(v["count"] for v in api["lang"])
    assert page.locator("p.count").inner_text() != total
    shown = page.locator("a.post-link").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    listed = page.request.get("/api/v1/posts?region=central-asia&limit=30").json()
    assert shown == [f"/posts/{item['id']}" for item in listed["items"]]
    page.go_back()
    page.wait_for_url(lambda url: "region=" not in url)
    page.wait_for_function("() => document.querySelector('h1').textContent.trim() === 'Latest'")
    assert post_titles(page) == everything


@pytest.mark.parametrize("width", WIDTHS)
def test_an_admin_signs_in_polls_a_source_and_signs_out(watched: Watched, site: LiveSite, width: str) -> None:
    from tests.api.conftest import ADMIN_KEY

    page = watched.page
    page.set_viewport_size({"width": WIDTHS[width], "height": 900})
    page.goto("/sources")
    assert page.locator(".actions").count() == 0
    page.fill("#admin-key", ADMIN_KEY)
    page.click("form.sign-in button")
    page.wait_for_selector("[role=status]")
    assert page.url.endswith("/sources?done=signed-in") and ADMIN_KEY not in page.url
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads the session
    page.wait_for_load_state("networkidle")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"sources-admin-{width}.png"), full_page=True)
    assert page.evaluate(OVERFLOW_CHECK) == []
    assert axe(page) == []
    page.locator(".actions button", has_text="Poll now").first.click()
    page.wait_for_url(re.compile(r"done=poll"))
    assert "the next polling tick fetches it" in page.locator("[role=status]").inner_text()
    page.fill("#add-url", "not a feed address")
    page.evaluate("document.querySelector('#add-url').type = 'text'")  # past the browser's own check
    page.click("form.add-feed button")
    page.wait_for_selector("[role=alert]")
    assert "The feed was not added" in page.locator("[role=alert]").inner_text()
    # the refused form's page is a 400, which the browser logs: expected here, and the only problem
    assert watched.problems == ["console error: Failed to load resource: the server responded with a status of "
                                "400 (Bad Request)"]
    watched.problems.clear()
    assert axe(page) == []
    page.click(".admin-bar button")
    page.wait_for_url(re.compile(r"done=signed-out"))
    assert page.locator(".actions").count() == 0
