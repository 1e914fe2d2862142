"""Clutter blanking and dateline finding, directly (the country tests cover their effect on tags)."""

from __future__ import annotations

import pytest

from aggregator.tagging.matcher import prepare
from aggregator.tagging.textprep import blank_clutter, find_datelines


def _blank(text: str, taxonomy) -> str:
    return blank_clutter(text, prepare(text), taxonomy.compiled.clutter)[0]


@pytest.mark.parametrize(("text", "kept", "gone"), [
    ("Body text.\nNo comments:\nPost a Comment", "Body text.", "Comment"),
    ("Body.\nLeave a Reply\nYour email address will not be published. Required fields are marked *", "Body.", "email"),
    ("Body.\nRelated\nShort link one\nShort link two\n" + "A long paragraph. " * 10, "A long paragraph.", "link"),
    ("See https://example.com/russia-news and www.example.org today", "today", "russia"),
    ("Body.\n[ad_1]\nSource link", "Body.", "Source"),
    ("ua en ru\nBody.", "Body.", "ua en"),
])
def test_clutter_is_blanked_in_place(taxonomy, text: str, kept: str, gone: str) -> None:
    blanked = _blank(text, taxonomy)
    assert len(blanked) == len(text)
    assert kept in blanked and gone not in blanked


def test_prose_is_never_clutter(taxonomy) -> None:
    text = "Share prices fell.\nHome ministers met in the capital to discuss the related issues of water."
    assert _blank(text, taxonomy) == text


@pytest.mark.parametrize(("text", "place", "wire"), [
    ("ALMATY, Jan 6 (Reuters) - Police", "ALMATY", True),
    ("NUR-SULTAN -- A commission", "NUR-SULTAN", True),
    ("By A Writer and B Writer DUSHANBE/BISHKEK (Reuters) - Two", "DUSHANBE/BISHKEK", True),
    ("Tashkent, Uzbekistan (Agency) — Between", "Tashkent", True),
    ("Staunton, Nov. 17 – With the", "Staunton", False),
    ("Brussels 06.01.2022 Someone wrote", "Brussels", False),
])
def test_datelines(text: str, place: str, wire: bool) -> None:
    (dateline,) = find_datelines(text)
    assert text[dateline.start :].startswith(place) and dateline.wire is wire


@pytest.mark.parametrize("text", ["The talks, held on Nov. 17, failed.", "In Moscow the mood was grim."])
def test_ordinary_sentences_are_not_datelines(text: str) -> None:
    assert find_datelines(text) == []
