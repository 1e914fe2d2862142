"""Hostile feeds ingested, then every page of the reader visited in a real browser: no script runs.

The inputs are the hostile corpus (tests/support/hostile.py): the project's own XSS payloads and, with
../shared, feedparser's sanitizer vectors: script elements, event handlers, javascript: URLs, SVG and CSS tricks. A hook
installed before any page script records every way a payload would show itself (dialogs, a call to
the hooks below, a script element or an on* attribute in the live DOM); the page's Content Security
Policy must hold too (a violation report would mean something tried to run).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aggregator.db import Database
from aggregator.runtime import build_web_app
from tests.api.conftest import api_settings
from tests.support.hostile import HostileCorpus
from tests.web.conftest import LiveSite, ServerThread

pytestmark = pytest.mark.browser

HOOK = """
window.__ran = [];
for (const name of ['alert', 'confirm', 'prompt', 'print', 'open']) {
  window[name] = (...args) => { window.__ran.push(name + ': ' + args.join(' ')); };
}
document.addEventListener('securitypolicyviolation',
  e => window.__ran.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
"""
DOM_CHECK = """() => {
  const found = [...window.__ran];
  for (const s of document.querySelectorAll('script')) {
    const src = s.getAttribute('src') || '';
    if (!src.startsWith('/static/')) found.push('script element: ' + s.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) found.push('handler: ' + el.tagName + ' ' + a.name);
      const linking = ['href', 'src', 'action', 'formaction', 'xlink:href'].includes(a.name);
      if (linking && /^\\s*(javascript|vbscript|data):/i.test(a.value))
        found.push('active url: ' + el.tagName + ' ' + a.name + '=' + a.value.slice(0, 40));
    }
  }
  return found;
}"""


@pytest.fixture(scope="module")
def hostile_site(hostile_corpus: HostileCorpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    settings = api_settings(hostile_corpus.url, tmp_path_factory.mktemp("hostile-web"), fetch_concurrency=8)
    with Database(hostile_corpus.url, max_size=10) as db, ServerThread(build_web_app(settings, db)) as base:
        yield LiveSite(base, db, settings)


def test_no_payload_runs_on_any_page(browser: Any, hostile_site: LiveSite) -> None:
    context = browser.new_context(base_url=hostile_site.base, java_script_enabled=True)
    context.add_init_script(HOOK)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    found: dict[str, list[str]] = {}
    ids: list[int] = []
    url = "/"
    while url:  # every page of the stream, then every post
        page.goto(url, wait_until="domcontentloaded")
        ids += [int(h.rsplit("/", 1)[1]) for h in page.locator("a.post-link").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))")]
        found[url] = page.evaluate(DOM_CHECK)
        older = page.locator("a.older")
        url = older.get_attribute("href") if older.count() else ""
    for path in ["/sources", "/?q=script", "/?q=alert", "/countries/KZ"] + [f"/posts/{i}" for i in ids]:
        page.goto(path, wait_until="domcontentloaded")
        found[path] = page.evaluate(DOM_CHECK)
    context.close()
    with hostile_site.db.connection() as conn:
        stored = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    assert len(ids) == stored >= 55, (len(ids), stored)
    assert dialogs == []
    assert {path: problems for path, problems in found.items() if problems} == {}


def test_the_hook_sees_a_payload_that_runs(browser: Any, hostile_site: LiveSite) -> None:
    """The check above can fail: a handler added to the page, and a dialog called, are both seen."""
    context = browser.new_context(base_url=hostile_site.base)
    context.add_init_script(HOOK)
    page = context.new_page()
    page.goto("/")
    page.evaluate("() => { document.body.setAttribute('onclick', 'x'); alert('pwned'); }")
    problems = page.evaluate(DOM_CHECK)
    context.close()
    assert any("handler: BODY onclick" in p for p in problems) and any("alert: pwned" in p for p in problems)
