"""The shapes of API responses and request bodies, as the OpenAPI document publishes them.

Responses are validated against these models on the way out, so the published schema cannot
drift from what the API sends (and the schemathesis test checks it from the outside too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    kind: str = Field(description="country or topic")
    code: str
    name: str | None = Field(description="Name in the taxonomy (null for a code it no longer has).")
    role: str | None = Field(description="primary or mentioned for countries; null for topics.")
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
    published: datetime
    updated: datetime | None
    lang: str | None
    summary: str
    text: str | None = Field(default=None, description="With include=text.")
    score: float | None = Field(default=None, description="Full-text relevance, with sort=relevance.")
    tags: list[TagOut]


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
    published: datetime
    updated: datetime | None
    first_seen: datetime
    changed: datetime
    lang: str | None
    categories: list[str]
    summary: str
    text: str
    html: str = Field(description="Sanitized HTML of the post.")
    source: SourceRef | None
    sources: list[LinkedSourceOut] = Field(description="Every source that carried the post.")
    taxonomy_version: str | None
    tags: list[TagOut]


class FacetValue(BaseModel):
    key: str
    name: str | None = None
    count: int


class Facets(BaseModel):
    country: list[FacetValue]
    topic: list[FacetValue]
    source: list[FacetValue]
    day: list[FacetValue] = Field(description="Newest days first, at most `days` of them; keys are UTC dates.")


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
