"""Digest subscriptions on the web: the JSON API, the /subscribe page (plain HTML forms, no
JavaScript), and the pages behind the signed links of the emails.

    POST /api/v1/subscriptions                  JSON: email + filter + time -> 202, confirmation emailed
    GET  /subscribe, POST /subscribe            the form
    GET  /subscriptions/confirm/{token}         a page with a Confirm button (POST confirms)
    GET  /subscriptions/manage/{token}          change filter, hour, zone, format (POST saves)
    GET  /subscriptions/unsubscribe/{token}     a page asking to confirm; never unsubscribes by itself
    POST /subscriptions/unsubscribe/{token}     unsubscribes at once (RFC 8058 one-click)

GETs change nothing: mail scanners open links in emails, and an unsubscribe or a confirmation
must come from the person. The API answers the same whether the address was new, pending or
already subscribed (or over its confirmation limit), so it tells nobody who subscribes to what.

Neither POST can mail-bomb anyone: one client IP may subscribe SUBSCRIBE_CLIENT_PER_MINUTE /
_PER_HOUR times (API and form together, per web process; then 429 with Retry-After), an address
has one pending subscription at a time (digest.subscribe), and it gets at most
SUBSCRIBE_ADDRESS_LIMIT confirmations per window (digest.service.send_confirmations).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from aggregator.config import Settings
from aggregator.digest import render, subscribe
from aggregator.digest.build import filter_label
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import send_confirmations
from aggregator.digest.links import CONFIRM_PATH, MANAGE_PATH, UNSUBSCRIBE_PATH
from aggregator.digest.schedule import zone_names
from aggregator.digest.send import open_sender
from aggregator.errors import InvalidInputError, InvalidTokenError, RateLimitError
from aggregator.query import multi_dict
from aggregator.web.context import ApiContext
from aggregator.web.errors import ERROR_RESPONSES, RATE_LIMITED_RESPONSE
from aggregator.web.guards import require_form
from aggregator.web.ratelimit import ClientLimiter, Limit, client_key

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 64 * 1024
_FIELD_NAMES = {"country": "countries", "region": "regions", "topic": "topics"}
FOCUS_REGIONS = ("central-asia", "caucasus", "post-soviet", "afpak")


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320, examples=["analyst@example.org"])
    countries: list[str] = Field(default_factory=list, examples=[["KZ"]])
    regions: list[str] = Field(default_factory=list, examples=[["central-asia"]])
    topics: list[str] = Field(default_factory=list, examples=[["terrorism"]])
    q: str | list[str] | None = Field(default=None, description="Words (web-search syntax); a list matches any.")
    role: Literal["any", "primary"] = "any"
    match: Literal["any", "all"] = "any"
    timezone: str = Field(default="UTC", examples=["Asia/Almaty"], description="IANA time zone of send_hour.")
    send_hour: int = Field(default=8, ge=0, le=23, description="Local hour the digest is sent at.")
    format: Literal["html", "text"] = "html"


class SubscriptionAccepted(BaseModel):
    status: Literal["confirmation_sent"] = "confirmation_sent"
    email: str
    message: str = "If this address is not subscribed to this filter yet, a confirmation link is on its way."


def _api_error(exc: InvalidInputError) -> InvalidInputError:
    name = _FIELD_NAMES.get(exc.parameter, exc.parameter)
    return InvalidInputError(name, exc.message)


def client_limit(settings: Settings) -> Callable[[Request], None]:
    """One budget for the API and the form of one app (one web process): they do the same thing."""
    limiter = ClientLimiter([Limit(settings.subscribe_client_per_minute, 60.0),
                             Limit(settings.subscribe_client_per_hour, 3600.0)])

    def check(request: Request) -> None:
        client = client_key(request.client.host if request.client else None)
        wait = limiter.check(client, time.monotonic())
        if wait:
            log.warning("subscription.client_limited client=%s retry_after=%.0f", client, wait)
            raise RateLimitError("subscription requests from this client", wait)

    return check


def subscriptions_router(api: ApiContext) -> APIRouter:
    router = APIRouter(tags=["subscriptions"])
    lock = threading.Lock()
    holder: dict[str, DigestContext] = {}
    limit_client = client_limit(api.settings)

    def digest_context() -> DigestContext:
        """Built at first use: it reads (or makes) the link-signing key in the database."""
        with lock:
            if "ctx" not in holder:
                holder["ctx"] = DigestContext.create(api.settings, api.db, taxonomy=api.taxonomy)
            return holder["ctx"]

    def confirm_soon(background: BackgroundTasks) -> None:
        """Send queued confirmations after the response; if the mail server is down the digest job
        sends them later."""
        def run() -> None:
            with open_sender(api.settings) as sender:
                send_confirmations(digest_context(), sender, datetime.now(UTC))

        background.add_task(run)

    @router.post("/api/v1/subscriptions", status_code=202, response_model=SubscriptionAccepted,
                 responses={**ERROR_RESPONSES, **RATE_LIMITED_RESPONSE}, dependencies=[Depends(limit_client)],
                 summary="Subscribe an email address to a daily digest of a filter")
    def create(body: SubscriptionCreate, background: BackgroundTasks) -> SubscriptionAccepted:
        req = subscribe.SubscriptionRequest(
            email=body.email, countries=body.countries, regions=body.regions, topics=body.topics, q=body.q,
            role=body.role, match=body.match, timezone=body.timezone, send_hour=body.send_hour,
            format=body.format, origin="api")
        try:
            subscribe.subscribe(digest_context(), req)
        except InvalidInputError as exc:
            raise _api_error(exc) from exc
        confirm_soon(background)
        # The address as given (normalized), never as stored: its stored spelling would tell an earlier request.
        return SubscriptionAccepted(email=subscribe.normalize_email(body.email))

    _pages(router, api, digest_context, confirm_soon, limit_client)
    return router


def page(title: str, status: int = 200, **context: Any) -> HTMLResponse:
    name = context.pop("template", "web/message.html")
    body = render.render(name, title=title, **{"lines": [], "action": None, "button": "", "quiet": False, **context})
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store",
                                                           "X-Robots-Tag": "noindex"})


def _too_many(exc: RateLimitError) -> HTMLResponse:
    wait = f"{exc.retry_after} seconds" if exc.retry_after < 120 else f"{math.ceil(exc.retry_after / 60)} minutes"
    response = page("Too many requests", 429, lines=[
        "Too many subscription requests came from your connection.", f"Please try again in {wait}."])
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _bad_link(exc: InvalidTokenError) -> HTMLResponse:
    return page("This link does not work", 400, lines=[f"{exc.message[:1].upper()}{exc.message[1:]}.",
                "Links in older emails expire; the newest digest has fresh ones."])


async def form_data(request: Request) -> dict[str, list[str]]:
    require_form(request)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInputError("form", "too large")
    return multi_dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def _form_choices(api: ApiContext) -> dict[str, Any]:
    focus = sorted({c for r in FOCUS_REGIONS if r in api.taxonomy.regions for c in api.taxonomy.regions[r].countries},
                   key=lambda c: api.taxonomy.countries.get(c, c))
    return {"regions": [(c, r.name) for c, r in api.taxonomy.regions.items()],
            "countries": [(c, api.taxonomy.countries.get(c, c)) for c in focus],
            "topics": list(api.taxonomy.topics.items()), "zones": zone_names()}


def _first(form: dict[str, list[str]], name: str, default: str = "") -> str:
    return (form.get(name) or [default])[0].strip()


def _request_from_form(form: dict[str, list[str]], *, role: str = "any",
                       match: str = "any") -> subscribe.SubscriptionRequest:
    """The subscribe form (or the manage page's, which has no email and keeps role and match)."""
    hour = _first(form, "send_hour", "8")
    countries = form.get("country", []) + [c for c in _first(form, "country_other").replace(";", ",").split(",")]
    return subscribe.SubscriptionRequest(
        email=_first(form, "email"), countries=[c for c in countries if c.strip()], regions=form.get("region", []),
        topics=form.get("topic", []), q=_first(form, "q") or None, role=role, match=match,
        timezone=_first(form, "timezone", "UTC"), send_hour=int(hour) if hour.isdigit() else -1,
        format=_first(form, "format", "html"), origin="form")


def _shown_form(form: dict[str, list[str]], send_hour: int) -> dict[str, Any]:
    """What was posted, to show again next to an error."""
    return {**{k: v for k, v in form.items() if k in ("region", "country", "topic")},
            **{k: _first(form, k) for k in ("email", "country_other", "q", "timezone", "format")},
            "send_hour": send_hour}


def _filter_form(stored: dict[str, Any], focus: list[tuple[str, str]]) -> dict[str, Any]:
    """A stored filter as the form's values: countries of the form's list as boxes, others as text."""
    boxes = {code for code, _name in focus}
    countries = [str(c) for c in stored.get("country", [])]
    return {"region": list(stored.get("region", [])), "topic": list(stored.get("topic", [])),
            "country": [c for c in countries if c in boxes],
            "country_other": ", ".join(c for c in countries if c not in boxes), "q": stored.get("q", "")}


def _pages(router: APIRouter, api: ApiContext, digest_context: Callable[[], DigestContext],
           confirm_soon: Callable[[BackgroundTasks], None], limit_client: Callable[[Request], None]) -> None:
    blank = {"email": "", "region": [], "country": [], "country_other": "", "topic": [], "q": "", "send_hour": 8,
             "timezone": "UTC", "format": "html"}

    @router.get("/subscribe", response_class=HTMLResponse, include_in_schema=False)
    def subscribe_form(request: Request) -> HTMLResponse:
        """Pre-filled from the query string (the reader's "daily email of this" link): codes it does
        not know are left out, the words are kept as typed (subscribing validates them)."""
        given = multi_dict(request.query_params.multi_items())
        choices = _form_choices(api)
        known = {"region": {c for c, _ in choices["regions"]}, "topic": {c for c, _ in choices["topics"]},
                 "country": set(api.vocabulary.countries)}
        form = {**blank, **{name: [v for v in given.get(name, []) if v in known[name]][:50] for name in known},
                "q": (given.get("q") or [""])[0][:256]}
        listed = {c for c, _ in choices["countries"]}
        form["country_other"] = ", ".join(c for c in form["country"] if c not in listed)
        return page("Daily digest by email", template="web/subscribe.html", form=form, error=None, **choices)

    @router.post("/subscribe", response_class=HTMLResponse, include_in_schema=False)
    async def subscribe_post(request: Request, background: BackgroundTasks) -> HTMLResponse:
        try:
            limit_client(request)
        except RateLimitError as exc:
            return _too_many(exc)
        form = await form_data(request)
        req = _request_from_form(form)
        try:
            subscribe.subscribe(digest_context(), req)
        except InvalidInputError as exc:
            shown = {**blank, **_shown_form(form, req.send_hour)}
            return page("Daily digest by email", 400, template="web/subscribe.html", form=shown,
                        error=str(_api_error(exc)), **_form_choices(api))
        confirm_soon(background)
        return page("Check your inbox", lines=[
            f"If {subscribe.normalize_email(req.email)} is not subscribed to this digest yet, a confirmation link "
            "is on its way.",
            "Nothing else is sent until you open it."])

    @router.get(CONFIRM_PATH + "{token}", response_class=HTMLResponse, include_in_schema=False)
    def confirm_page(token: str) -> HTMLResponse:
        ctx = digest_context()
        try:
            sub = subscribe.from_token(ctx, token, "confirm")
        except InvalidTokenError as exc:
            return _bad_link(exc)
        label = filter_label(sub.filter, ctx.labels)
        return page("Confirm your subscription", lines=[f"Send the daily digest of “{label}” to {sub.email}?"],
                    action=CONFIRM_PATH + token, button="Confirm subscription")

    @router.post(CONFIRM_PATH + "{token}", response_class=HTMLResponse, include_in_schema=False)
    def confirm(token: str) -> HTMLResponse:
        ctx = digest_context()
        try:
            sub = subscribe.confirm(ctx, token)
        except InvalidTokenError as exc:
            return _bad_link(exc)
        if sub.state != "active":
            return page("Not subscribed", lines=[f"This subscription is {sub.state}: subscribe again on /subscribe."])
        return page("You are subscribed", lines=[
            f"{sub.email} will get the digest of “{filter_label(sub.filter, ctx.labels)}” every day at "
            f"{sub.send_hour:02d}:00 ({sub.timezone}).", "Every digest has links to change or stop it."])

    _link_pages(router, digest_context, _form_choices(api))


def _link_pages(router: APIRouter, digest_context: Callable[[], DigestContext], choices: dict[str, Any]) -> None:
    def manage_view(ctx: DigestContext, token: str, sub: Any, *, saved: bool, status: int = 200,
                    form: dict[str, Any] | None = None, error: str | None = None) -> HTMLResponse:
        now = datetime.now(UTC)
        return page("Your daily digest", status, template="web/manage.html", sub=sub, saved=saved, error=error,
                    label=filter_label(sub.filter, ctx.labels), action=MANAGE_PATH + token,
                    form=form or _filter_form(sub.filter, choices["countries"]), **choices,
                    unsubscribe_action=UNSUBSCRIBE_PATH + ctx.links.token("unsubscribe", sub.id, now))

    @router.get(MANAGE_PATH + "{token}", response_class=HTMLResponse, include_in_schema=False)
    def manage_page(token: str) -> HTMLResponse:
        ctx = digest_context()
        try:
            return manage_view(ctx, token, subscribe.from_token(ctx, token, "manage"), saved=False)
        except InvalidTokenError as exc:
            return _bad_link(exc)

    @router.post(MANAGE_PATH + "{token}", response_class=HTMLResponse, include_in_schema=False)
    async def manage(token: str, request: Request) -> HTMLResponse:
        ctx = digest_context()
        try:
            sub = subscribe.from_token(ctx, token, "manage")
        except InvalidTokenError as exc:
            return _bad_link(exc)
        form = await form_data(request)
        hour = _first(form, "send_hour", str(sub.send_hour))
        send_hour = int(hour) if hour.isdigit() else -1
        # The filter changes only with the page's own form (its hidden `filter` field): a form that
        # posts no filter fields at all must not be read as "everything".
        filter_request = _request_from_form(form, role=str(sub.filter.get("role", "any")),
                                            match=str(sub.filter.get("match", "any"))) if "filter" in form else None
        try:
            subscribe.change(ctx, sub.id, timezone=_first(form, "timezone", sub.timezone), send_hour=send_hour,
                             format=_first(form, "format", sub.format), filter_request=filter_request)
        except InvalidInputError as exc:
            shown = {**_filter_form(sub.filter, choices["countries"]), **_shown_form(form, send_hour)}
            return manage_view(ctx, token, sub, saved=False, status=400, error=str(_api_error(exc)),
                               form=shown if filter_request else None)
        return manage_view(ctx, token, subscribe.from_token(ctx, token, "manage"), saved=True)

    @router.get(UNSUBSCRIBE_PATH + "{token}", response_class=HTMLResponse, include_in_schema=False)
    def unsubscribe_page(token: str) -> HTMLResponse:
        ctx = digest_context()
        try:
            sub = subscribe.from_token(ctx, token, "unsubscribe")
        except InvalidTokenError as exc:
            return _bad_link(exc)
        if sub.state == "unsubscribed":
            return page("Unsubscribed", lines=[f"{sub.email} gets no more of this digest."])
        return page("Unsubscribe?", lines=[f"Stop sending the digest of “{filter_label(sub.filter, ctx.labels)}” "
                                           f"to {sub.email}?"], action=UNSUBSCRIBE_PATH + token, button="Unsubscribe")

    @router.post(UNSUBSCRIBE_PATH + "{token}", response_class=HTMLResponse, include_in_schema=False)
    def unsubscribe(token: str) -> HTMLResponse:
        """RFC 8058: the mail client POSTs List-Unsubscribe=One-Click; no cookie, no second step."""
        ctx = digest_context()
        try:
            sub = subscribe.from_token(ctx, token, "unsubscribe")
        except InvalidTokenError as exc:
            return _bad_link(exc)
        subscribe.unsubscribe(ctx, sub.id)
        return page("Unsubscribed", lines=[f"{sub.email} gets no more of this digest.",
                                           "Subscribed by mistake? Subscribe again on /subscribe."])
