"""Surge alerts: /api/v1/alerts (JSON) and /feeds/alerts (Atom), filtered by country, place or topic.

Computed on request from the story counts of the last 29 days (aggregator/db/stories.py) with the
pure rule of aggregator/stories/alerts.py; the stories behind each alert are listed with it.
"""

from __future__ import annotations

import html
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from aggregator import __version__
from aggregator.db import stories as stories_db
from aggregator.errors import InvalidQueryError
from aggregator.feeds_out import Channel, Item, render, uuid_urn
from aggregator.stories.alerts import WINDOW, Alert, surge_alerts
from aggregator.web.api import json_response
from aggregator.web.context import ApiContext
from aggregator.web.errors import ERROR_RESPONSES
from aggregator.web.feed_handler import PLAIN_TEXT_RESPONSES

Codes = Annotated[list[str], Query(description="Only alerts on these codes; repeatable.")]


class AlertStory(BaseModel):
    id: int
    title: str


class AlertOut(BaseModel):
    kind: str = Field(description="country, place or topic")
    code: str
    name: str | None
    day: date
    stories: int = Field(description="Distinct new stories that day (by their first report's date).")
    baseline: float = Field(description="Usual stories a day (28-day median, weekday-aware).")
    score: float = Field(description="How many spreads above the baseline.")
    story_list: list[AlertStory]


def compute(ctx: ApiContext, now: datetime, kinds: dict[str, set[str]]) -> list[AlertOut]:
    """Today's alerts (UTC day of `now`), only those whose key the filter names (all without a filter)."""
    today = now.astimezone(UTC).date()
    start = datetime.combine(today - timedelta(days=WINDOW), time(), UTC)
    day_start, day_end = datetime.combine(today, time(), UTC), datetime.combine(today + timedelta(days=1), time(), UTC)
    with ctx.read() as conn:
        rows = [(r.kind, r.code, r.day, r.stories) for r in stories_db.daily_story_counts(conn, start, day_end)
                if not any(kinds.values()) or r.code in kinds.get(r.kind, set())]
        alerts = surge_alerts(rows, today, threshold=ctx.settings.alert_threshold,
                              min_excess=ctx.settings.alert_min_stories)
        behind = {(a.kind, a.code): stories_db.story_titles(conn, a.kind, a.code, day_start, day_end)
                  for a in alerts}
    return [_out(ctx, a, behind[(a.kind, a.code)]) for a in alerts]


def _out(ctx: ApiContext, a: Alert, stories: list[tuple[int, str]]) -> AlertOut:
    return AlertOut(kind=a.kind, code=a.code, name=ctx.tag_name(a.kind, a.code), day=a.day, stories=a.count,
                    baseline=a.baseline, score=a.score, story_list=[AlertStory(id=i, title=t) for i, t in stories])


def _kinds(ctx: ApiContext, country: list[str], place: list[str], topic: list[str]) -> dict[str, set[str]]:
    kinds = {"country": {c.upper() for c in country}, "place": {p.lower() for p in place},
             "topic": {t.lower() for t in topic}}
    known = {"country": ctx.taxonomy.countries, "place": ctx.taxonomy.places, "topic": ctx.taxonomy.topics}
    for kind, codes in kinds.items():
        for code in codes - set(known[kind]):
            raise InvalidQueryError(kind, f"unknown code {code[:40]!r}")
    return kinds


def alerts_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["alerts"], responses=ERROR_RESPONSES)

    @router.get("/api/v1/alerts", response_model=list[AlertOut],
                summary="Countries, places and topics with a surge of new stories today")
    def alerts(country: Codes = [], place: Codes = [], topic: Codes = []) -> Response:  # noqa: B006
        return json_response(compute(ctx, datetime.now(UTC), _kinds(ctx, country, place, topic)))

    @router.get("/feeds/alerts", summary="Atom feed of today's surge alerts",
                responses={200: {"content": {"application/atom+xml": {}}}, **PLAIN_TEXT_RESPONSES})
    def alerts_feed(request: Request, country: Codes = [], place: Codes = [],  # noqa: B006
                    topic: Codes = []) -> Response:  # noqa: B006
        now = datetime.now(UTC)
        found = compute(ctx, now, _kinds(ctx, country, place, topic))
        base = (ctx.settings.feeds_base_url or str(request.base_url)).rstrip("/")
        query = str(request.url.query)
        items = tuple(_item(base, a) for a in found)
        channel = Channel(
            id=uuid_urn(f"alerts:{sorted(country)}:{sorted(place)}:{sorted(topic)}"), title="Surge alerts",
            subtitle="Countries, places and topics with many more new stories today than usual",
            self_url=f"{base}/feeds/alerts" + (f"?{query}" if query else ""),
            home_url=f"{base}/api/v1/alerts" + (f"?{query}" if query else ""), alternates={},
            updated=max((i.updated for i in items), default=datetime.combine(now.date(), time(), UTC)),
            items=items, version=__version__)
        return Response(render("atom", channel), media_type="application/atom+xml; charset=utf-8",
                        headers={"Vary": "Accept-Encoding", "Cache-Control": "public, max-age=300"})

    return router


def _item(base: str, a: AlertOut) -> Item:
    name = a.name or a.code
    title = f"Surge: {name}: {a.stories} new stories today (usually {a.baseline:g})"
    lines = [f"{s.title} — {base}/stories/{s.id}" for s in a.story_list]
    moment = datetime.combine(a.day, time(), UTC)
    return Item(id=uuid_urn(f"alert:{a.kind}:{a.code}:{a.day.isoformat()}"), title=title,
                url=f"{base}/api/v1/stories?{a.kind}={a.code}&since={a.day.isoformat()}", author="aggregator",
                published=moment, updated=moment, summary="\n".join(lines),
                html="<ul>" + "".join(f'<li><a href="{base}/stories/{s.id}">{html.escape(s.title)}</a></li>'
                                      for s in a.story_list) + "</ul>")
