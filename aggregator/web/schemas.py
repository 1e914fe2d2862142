"""The shapes of API responses and request bodies, as the OpenAPI document publishes them.

Responses are validated against these models on the way out, so the published schema cannot
drift from what the API sends (and the schemathesis test checks it from the outside too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_PUBLISHED = ("When the post was published, as its feed says; when date_estimated is true, when the "
              "aggregator first saw it. Posts are ordered and filtered (since, until) by this date.")
_ESTIMATED = ("True when the feed gave no date: `published` is then the post's arrival, not its "
              "publication. Posts stored before the database's migration 0007 are never marked, even "
              "when their feed gave no date (they cannot be told apart).")


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_parameter, not_found.")
    message: str = Field(description="What went wrong, for a person; names the parameter when one is at fault.")
    details: dict[str, Any] = Field(default_factory=dict, description="e.g. {\"parameter\": \"country\"}")


class ErrorBody(BaseModel):
    error: ErrorInfo


class Evidence(BaseModel):
    field: str = Field(description="title, text or label: the string the offsets index.")
    start: int
    end: int
    phrase: str
    rule: str
    weight: float


class TagOut(BaseModel):
    kind: str = Field(description="country, place (below the country) or topic")
    code: str
    name: str | None = Field(description="Name in the taxonomy (null for a code it no longer has).")
    role: str | None = Field(description="primary or mentioned for countries; null for places and topics.")
    score: float
    evidence: list[Evidence] | None = Field(default=None, description="With include=evidence (always on /posts/{id}).")


class SourceRef(BaseModel):
    id: int
    name: str
    url: str


class PostItem(BaseModel):
    id: int
    title: str
    url: str | None
    source: SourceRef | None = Field(description="The source the post first came from.")
    author: str | None
    published: datetime = Field(description=_PUBLISHED)
    date_estimated: bool = Field(description=_ESTIMATED)
    updated: datetime | None
    lang: str | None = Field(description="Language detected from the text (ISO 639-1), e.g. ru, en, kk.")
    places: list[str] = Field(default_factory=list, description="Codes of the places below the country it names "
                              "(see /api/v1/places).")
    summary: str
    text: str | None = Field(default=None, description="With include=text.")
    score: float | None = Field(default=None, description="Full-text relevance, with sort=relevance.")
    tags: list[TagOut]
    story_id: int | None = Field(default=None, description="The story (one event, many outlets) the post is in "
                                 "(see /api/v1/stories/{id}).")
    story_sources: int | None = Field(default=None, description="How many sources reported that story.")


class PostPage(BaseModel):
    items: list[PostItem]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")


class LinkedSourceOut(SourceRef):
    first_seen: datetime


class PostDetail(BaseModel):
    id: int
    title: str
    url: str | None
    author: str | None
    published: datetime = Field(description=_PUBLISHED)
    date_estimated: bool = Field(description=_ESTIMATED)
    updated: datetime | None
    first_seen: datetime
    changed: datetime
    lang: str | None = Field(description="Language detected from the text (ISO 639-1), e.g. ru, en, kk.")
    places: list[str] = Field(default_factory=list, description="Codes of the places below the country it names.")
    categories: list[str]
    summary: str
    text: str
    html: str = Field(description="Sanitized HTML of the post.")
    source: SourceRef | None
    sources: list[LinkedSourceOut] = Field(description="Every source that carried the post.")
    taxonomy_version: str | None
    tags: list[TagOut]
    story_id: int | None = Field(default=None, description="The story the post is in.")


class FacetValue(BaseModel):
    key: str
    name: str | None = None
    count: int


class Facets(BaseModel):
    country: list[FacetValue]
    topic: list[FacetValue]
    source: list[FacetValue]
    day: list[FacetValue] = Field(description="Newest days first, at most `days` of them; keys are UTC dates.")
    lang: list[FacetValue] = Field(default_factory=list, description="Languages (BCP 47 codes; 'und': unknown).")


class CountryOut(BaseModel):
    code: str
    name: str
    posts: int
    primary_posts: int


class RegionOut(BaseModel):
    code: str
    name: str
    countries: list[str]
    posts: int


class PlaceOut(BaseModel):
    code: str
    name: str
    country: str | None = Field(description="The country it lies in; null for a cross-border place.")
    within: str | None = Field(description="The bigger place it is part of (place=<that> finds it too).")
    posts: int


class TopicOut(BaseModel):
    code: str
    name: str
    posts: int


class SourceOut(BaseModel):
    id: int
    url: str
    name: str
    site_url: str | None
    enabled: bool
    disabled_reason: str | None
    default_countries: list[str]
    default_topics: list[str]
    origin: str
    poll_interval: int
    last_polled: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_kind: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    next_poll: datetime | None = Field(description="null while the source is disabled.")
    posts: int
    last_warnings: list[str] = Field(
        default_factory=list,
        description="What the last poll that read the feed stored not in full (entries over the per-poll cap, "
        "over-long fields cut) or had to repair; not errors.",
    )


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2000, examples=["https://windowoneurasia2.blogspot.com/feeds/posts/default"])
    name: str | None = Field(default=None, max_length=300)
    countries: list[str] | None = Field(default=None, max_length=50,
                                        description="Default country focus (omitted: kept for a known source).")
    topics: list[str] | None = Field(default=None, max_length=50,
                                     description="Default topics (omitted: kept for a known source).")


class SourcePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=300)
    countries: list[str] | None = Field(default=None, max_length=50)
    topics: list[str] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


class Health(BaseModel):
    status: str
    detail: str | None = None


class StoryItem(BaseModel):
    id: int
    title: str = Field(description="The title of its first post (in the preferred language, with lang=).")
    first_seen: datetime = Field(description="Date of its first post.")
    last_seen: datetime = Field(description="Date of its latest post.")
    updated: datetime = Field(description="When a post last joined it.")
    posts: int
    sources: int


class StoryPage(BaseModel):
    items: list[StoryItem]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")


class StoryPostOut(BaseModel):
    id: int
    title: str
    url: str | None
    lang: str | None
    published: datetime
    source: SourceRef | None


class StoryDetail(StoryItem):
    merged_from: int | None = Field(default=None, description="The id asked for, when that story was merged "
                                    "into this one.")
    post_list: list[StoryPostOut] = Field(description="Its posts, oldest first, each with its source.")
    source_list: list[SourceRef] = Field(description="Its sources in the order they reported it.")
