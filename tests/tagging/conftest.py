"""Fixtures of the tagging tests: the real taxonomy (loaded once) and a helper that tags a snippet."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aggregator.tagging import Tag, TagInput, Taxonomy, load_taxonomy, tag_post


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="session")
def tag(taxonomy: Taxonomy) -> Callable[..., list[Tag]]:
    def run(text: str, title: str = "", **kwargs: object) -> list[Tag]:
        return tag_post(TagInput(title=title, text=text, **kwargs), taxonomy)  # type: ignore[arg-type]

    return run
