"""The phrase matcher on its own: longest match, word boundaries, case rules, prefixes, layers, offsets."""

from __future__ import annotations

import pytest

from aggregator.tagging.matcher import Phrase, PhraseIndex, normalize

INDEX = PhraseIndex([
    Phrase("Guinea", "exact", "GN"),
    Phrase("Papua New Guinea", "ci", "PG"),
    Phrase("Guinea-Bissau", "ci", "GW"),
    Phrase("the Kremlin", "cap", "kremlin"),
    Phrase("US", "exact", "us"),
    Phrase("U.S.", "exact", "us"),
    Phrase("Türkiye", "ci", "tr"),
    Phrase("terroris*", "ci", "terror"),
    Phrase("terrorist attack", "ci", "attack"),
    Phrase("border guard*", "ci", "guards"),
    Phrase("Armed Forces of Ukraine", "cap", "ua-army"),
    Phrase("armed forces", "ci", "military", layer=1),
])

CASES = [
    ("longest-wins", "He flew to Papua New Guinea.", [("Papua New Guinea", ("PG",))]),
    ("hyphenated", "Guinea-Bissau and Guinea", [("Guinea-Bissau", ("GW",)), ("Guinea", ("GN",))]),
    ("exact-case", "a guinea coin", []),
    ("caps-allowed-for-long", "GUINEA", [("GUINEA", ("GN",))]),
    ("short-caps-only-as-written", "let us go; the US went", [("US", ("us",))]),
    ("dotted", "U.S.-led", [("U.S", ("us",))]),
    ("cap-on-first-capitalised-word", "the Kremlin; The Kremlin; the kremlin",
     [("the Kremlin", ("kremlin",)), ("The Kremlin", ("kremlin",))]),
    ("accents", "Türkiye and Turkiye", [("Türkiye", ("tr",)), ("Turkiye", ("tr",))]),
    ("word-boundary", "Guineans", []),
    ("prefix", "terrorists and terrorism", [("terrorists", ("terror",)), ("terrorism", ("terror",))]),
    ("literal-before-prefix", "a terrorist attack", [("terrorist attack", ("attack",))]),
    ("prefix-last-word", "Border guards fired", [("Border guards", ("guards",))]),
    ("other-layer-inside", "the Armed Forces of Ukraine",
     [("Armed Forces of Ukraine", ("ua-army",)), ("Armed Forces", ("military",))]),
    ("no-match", "nothing here", []),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_scan(text: str, expected: list[tuple[str, tuple[str, ...]]]) -> None:
    got = [(text[m.start : m.end], m.payloads) for m in INDEX.scan(text)]
    assert got == expected


def test_offsets_survive_a_letter_whose_lower_case_is_longer() -> None:
    text = "İstanbul, then Türkiye"  # 'İ'.lower() is two characters; offsets must not shift
    assert [text[m.start : m.end] for m in INDEX.scan(text)] == ["Türkiye"]


@pytest.mark.parametrize("bad", [Phrase("x", "shout", 1), Phrase("--", "ci", 1), Phrase("ab*", "ci", 1)])
def test_bad_phrases_are_rejected(bad: Phrase) -> None:
    with pytest.raises(ValueError):
        PhraseIndex([bad])


def test_normalize() -> None:
    assert normalize("  Nagorno-Karabakh ") == "nagorno karabakh"
    assert normalize("Côte d'Ivoire") == "cote d ivoire"
