"""The /sources page: every feed with its health, read-only, and with the admin key its actions.

The admin key is the API's (AGGREGATOR_ADMIN_API_KEY); there is no second secret. It is typed once
into a sign-in form and never travels in a URL: the answer sets a session cookie that proves it was
given (an expiry and an HMAC of that expiry under the key, so the key itself is not stored in the
browser, and changing the key ends every session). The cookie is HttpOnly, SameSite=Strict and
scoped to /sources, so another site can neither read it nor make the browser send it with a form
of its own; a POST that the browser says comes from another site (Sec-Fetch-Site) is refused as
well. Every action is a plain HTML form (POST, then a 303 redirect back to the page: no
JavaScript needed, a reload does not repeat it) and its outcome or error is said on the page.

    POST /sources/login            the key -> the session cookie
    POST /sources/logout           ends it
    POST /sources/add              a feed, through sources/registry.py add_source like the CLI and API
    POST /sources/{id}/disable     stops polling it (its posts stay)
    POST /sources/{id}/enable      polls it again, at once
    POST /sources/{id}/poll        makes it due now: the next polling tick fetches it
    GET  /sources/{id}/remove      asks, then POST deletes the source (its posts stay)
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse

from aggregator.db import sources as sources_db
from aggregator.db import stats as stats_db
from aggregator.errors import InvalidInputError
from aggregator.sources.registry import add_source, edit_source
from aggregator.sources.spec import SourceInput
from aggregator.sources.urls import redact_text, redact_url
from aggregator.web.subscriptions import form_data

COOKIE = "aggregator_admin"
COOKIE_PATH = "/sources"
SESSION_SECONDS = 8 * 3600
MAX_ID = 2**63 - 1
SourceId = Annotated[int, Path(ge=1, le=MAX_ID)]
Action = Literal["disable", "enable", "poll", "remove"]

# What the page says after an action (the redirect names it; nothing from the URL is shown as given).
NOTICES = {
    "signed-in": "Signed in: the actions below change the sources. Sign out when you are done.",
    "signed-out": "Signed out.",
    "added": "Added {name}. It is polled at the next tick.",
    "updated": "{name} was known already: it is updated and enabled.",
    "disabled": "Disabled {name}. Its posts stay.",
    "enabled": "Enabled {name}. It is polled at the next tick.",
    "poll": "{name} is due now: the next polling tick fetches it.",
    "removed": "Removed the source. Its posts stay.",
}


class AdminSessions:
    """Session cookies that prove the admin key was given, valid until they expire or the key changes."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    @property
    def configured(self) -> bool:
        return self._key is not None

    def key_matches(self, given: str) -> bool:
        """Compared in constant time, as the API compares it."""
        return self._key is not None and hmac.compare_digest(given.encode(), self._key)

    def issue(self, now: float) -> str:
        expires = int(now) + SESSION_SECONDS
        return f"{expires}.{self._mac(expires)}"

    def valid(self, cookie: str | None, now: float) -> bool:
        if self._key is None or not cookie:
            return False
        expires, _, mac = cookie.partition(".")
        if not expires.isdigit() or int(expires) < now or int(expires) > now + SESSION_SECONDS:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(int(expires)).encode())

    def _mac(self, expires: int) -> str:
        assert self._key is not None
        return hmac.new(self._key, f"sources-page-session:{expires}".encode(), hashlib.sha256).hexdigest()


def from_another_site(request: Request) -> bool:
    """Whether the browser says the request was started by another site. (The Origin header cannot
    tell: the pages' no-referrer policy makes browsers send `Origin: null` with same-origin forms.)"""
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def source_pages(router: APIRouter, reader: Any) -> None:
    """Adds the page and its actions to the reader's router (`reader`: aggregator.web.reader.Reader)."""
    ctx = reader.ctx
    key = ctx.settings.admin_api_key.get_secret_value() if ctx.settings.admin_api_key else None
    sessions = AdminSessions(key)
    env = reader.env
    env.filters.setdefault("masked_url", redact_url)
    env.filters.setdefault("masked_text", redact_text)

    def is_admin(request: Request) -> bool:
        return sessions.valid(request.cookies.get(COOKIE), time.time())

    def render(request: Request, status: int = 200, *, notice: str | None = None, error: str | None = None,
               added: dict[str, str] | None = None) -> Response:
        sort = request.query_params.get("sort", "name")
        with reader.read() as conn:
            rows = sources_db.list_with_health(conn)
            rates = stats_db.posts_per_day(conn)
        keys: dict[str, Callable[[Any], Any]] = {
            "name": lambda r: r.source.display_name.casefold(),
            "health": lambda r: (r.source.enabled, -r.source.consecutive_failures),
            "last_success": lambda r: r.source.last_success_at or datetime.min.replace(tzinfo=UTC),
            "posts": lambda r: -r.posts_count,
            "rate": lambda r: -rates.get(r.source.id, 0.0),
        }
        chosen = sort if sort in keys else "name"
        rows = sorted(rows, key=keys[chosen])
        admin = is_admin(request)
        response: Response = reader.page(
            request, "sources.html", status, title="Sources", rows=rows, rates=rates, sort=chosen, sorts=list(keys),
            admin=admin, admin_configured=sessions.configured, notice=notice, error=error,
            added=added or {"url": "", "name": "", "countries": "", "topics": ""})
        response.headers["Cache-Control"] = "no-store" if admin else "no-cache"
        response.headers["Vary"] = response.headers.get("Vary", "") + ", Cookie"
        return response

    def done(what: str, source_id: int | None = None) -> Response:
        target = f"/sources?done={what}" + (f"&source={source_id}" if source_id else "")
        return RedirectResponse(target, status_code=303)

    def refused(request: Request) -> Response | None:
        """The page with why, when this POST may not change anything; None when it may."""
        if from_another_site(request):
            return render(request, 403, error="This form must be sent from this site's own sources page.")
        if not is_admin(request):
            return render(request, 401, error="Sign in with the admin key first (a session ends after "
                                              f"{SESSION_SECONDS // 3600} hours).")
        return None

    @router.get("/sources")
    def sources_page(request: Request) -> Response:
        notice = None
        what = request.query_params.get("done")
        if what in NOTICES:
            name = "The source"
            source_id = request.query_params.get("source", "")
            if source_id.isdigit() and int(source_id) <= MAX_ID:
                with reader.read() as conn:
                    found = sources_db.get(conn, int(source_id))
                name = redact_text(found.display_name) if found else name
            notice = NOTICES[what].format(name=name)
        return render(request, notice=notice)

    @router.post("/sources/login")
    async def login(request: Request) -> Response:
        form = await form_data(request)
        if from_another_site(request):
            return render(request, 403, error="This form must be sent from this site's own sources page.")
        if not sessions.configured:
            return render(request, 403, error="No admin key is configured (AGGREGATOR_ADMIN_API_KEY), so sources "
                                              "can only be changed with the aggregator feeds command.")
        if not sessions.key_matches((form.get("key") or [""])[0]):
            return render(request, 401, error="That is not the admin key.")
        response = done("signed-in")
        response.set_cookie(COOKIE, sessions.issue(time.time()), max_age=SESSION_SECONDS, path=COOKIE_PATH,
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    @router.post("/sources/logout")
    def logout(request: Request) -> Response:
        if from_another_site(request):
            return render(request, 403, error="This form must be sent from this site's own sources page.")
        response = done("signed-out")
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    @router.post("/sources/add")
    async def add(request: Request) -> Response:
        form = await form_data(request)
        if (answer := refused(request)) is not None:
            return answer
        given = {name: (form.get(name) or [""])[0].strip() for name in ("url", "name", "countries", "topics")}

        def codes(text: str) -> list[str] | None:
            found = [c.strip() for c in text.replace(";", ",").split(",") if c.strip()]
            return found or None

        try:
            with ctx.db.connection() as conn:
                source, created = add_source(
                    conn, SourceInput(given["url"], given["name"] or None, codes(given["countries"]),
                                      codes(given["topics"])),
                    origin="api", vocabulary=ctx.vocabulary, poll_interval=ctx.settings.default_interval)
        except InvalidInputError as exc:
            return render(request, 400, error=f"The feed was not added: {_plain(exc)}", added=given)
        return done("added" if created else "updated", source.id)

    @router.get("/sources/{source_id}/remove")
    def confirm_remove(request: Request, source_id: SourceId) -> Response:
        if not is_admin(request):
            return RedirectResponse("/sources", status_code=303)
        with reader.read() as conn:
            found = sources_db.get(conn, source_id)
        if found is None:
            return reader.not_found(request, f"source {source_id}")
        response: Response = reader.page(request, "source_remove.html", title="Remove a source", source=found)
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.post("/sources/{source_id}/{action}")
    async def act(request: Request, source_id: SourceId, action: Action) -> Response:
        await form_data(request)
        if (answer := refused(request)) is not None:
            return answer
        with ctx.db.connection() as conn:
            found = sources_db.get(conn, source_id)
            if found is None:
                error = "That source does not exist any more (removed meanwhile?)."
            elif action == "disable":
                sources_db.disable(conn, source_id, "disabled on the sources page")
                error = None
            elif action == "enable":
                edit_source(conn, found, vocabulary=ctx.vocabulary, enabled=True)
                error = None
            elif action == "poll":
                polled = sources_db.poll_soon(conn, source_id)
                error = None if polled else f"{redact_text(found.display_name)} is disabled: enable it to poll it."
            else:
                sources_db.delete(conn, source_id)
                error = None
        if error is not None:
            return render(request, 404 if found is None else 409, error=error)
        return done({"disable": "disabled", "enable": "enabled", "poll": "poll", "remove": "removed"}[action],
                    None if action == "remove" else source_id)


def _plain(exc: InvalidInputError) -> str:
    """The reason in words for the form's fields ('url' is the feed's address)."""
    field = {"url": "the feed address", "countries": "the countries", "topics": "the topics"}.get(
        exc.parameter, exc.parameter)
    return f"{field}: {exc.message}"
