"""Small readers of tag lists, shared by the tagging tests."""

from __future__ import annotations

from aggregator.tagging import Tag


def countries(tags: list[Tag]) -> set[str]:
    return {t.code for t in tags if t.kind == "country"}


def primaries(tags: list[Tag]) -> set[str]:
    return {t.code for t in tags if t.kind == "country" and t.role == "primary"}


def topics(tags: list[Tag]) -> set[str]:
    return {t.code for t in tags if t.kind == "topic"}
