"""Input the tagger must survive: mixed languages, transliterations, unknown scripts, nothing, a megabyte."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from aggregator.tagging import Tag

TRANSLITERATIONS = ["Kazakhstan", "Qazaqstan", "Казахстан", "Казахстане", "Қазақстан"]


@pytest.mark.parametrize("name", TRANSLITERATIONS)
def test_transliterations(tag: Callable[..., list[Tag]], name: str) -> None:
    assert "KZ" in {t.code for t in tag(f"News from {name} today. Новости: {name}.") if t.kind == "country"}


def test_local_spellings_in_a_russian_text(tag: Callable[..., list[Tag]]) -> None:
    countries = {t.code for t in tag("Флаги: Қазақстан, Тоҷикистон, Ўзбекистон.") if t.kind == "country"}
    assert {"KZ", "TJ", "UZ"} <= countries


def test_mixed_language_post(tag: Callable[..., list[Tag]]) -> None:
    text = ("Kyrgyz border guards said on Monday. Пограничники Таджикистана сообщили о перестрелке. "
            "Ферганская долина.")
    countries = {t.code for t in tag(text) if t.kind == "country"}
    assert {"KG", "TJ", "UZ"} <= countries


@pytest.mark.parametrize("text", ["", " ", "\n\n", "ꦲꦏ꧀ꦱꦫ ꦗꦮ " * 50, "中华人民共和国 新疆 " * 50,
                                  "\u0000\ufffd\u200b" * 30, "😀🇰🇿" * 100])
def test_unknown_script_and_empty_text(tag: Callable[..., list[Tag]], text: str) -> None:
    tag(text, title=text[:80])


def test_a_megabyte_of_text_is_tagged_in_time(tag: Callable[..., list[Tag]]) -> None:
    chunk = ("Президент Казахстана Касым-Жомарт Токаев встретился с Владимиром Путиным в Москве. "
             "Kazakhstan's president met Russian officials in Moscow. ")
    text = (chunk * (1_000_000 // len(chunk) + 1))[:1_000_000]
    started = time.process_time()
    tags = tag(text)
    assert time.process_time() - started < 10.0
    assert {"KZ", "RU"} <= {t.code for t in tags if t.kind == "country"}
