"""Places below the country: tagged with evidence, in English and Russian, and what regions mean."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aggregator.tagging import Tag, Taxonomy

CASES = [
    ("Militants were killed in Dagestan near Makhachkala.", {"dagestan"}),
    ("Боевики убиты в Дагестане, под Махачкалой.", {"dagestan"}),
    ("Security was tightened across the North Caucasus.", {"north-caucasus"}),
    ("Ситуация на Северном Кавказе обострилась.", {"north-caucasus"}),
    ("Чеченские силовики задержали блогера в Грозном.", {"chechnya"}),
    ("Water disputes in the Fergana Valley flare again.", {"fergana-valley"}),
    ("Конфликт в Ферганской долине.", {"fergana-valley"}),
    ("Clashes near Isfara and in Batken region.", {"isfara", "batken"}),
    ("Столкновения у Исфары и в Баткенской области.", {"isfara", "batken"}),
    ("Protests in Khorog, Gorno-Badakhshan.", {"gorno-badakhshan"}),
    ("Протесты в Хороге, ГБАО.", {"gorno-badakhshan"}),
    ("The Taliban sent fighters to Badakhshan.", {"badakhshan-afghanistan"}),
    ("Unrest in Karakalpakstan and Nukus.", {"karakalpakstan"}),
    ("Беспорядки в Каракалпакстане.", {"karakalpakstan"}),
    ("Armenians left Nagorno-Karabakh.", {"nagorno-karabakh"}),
    ("Армяне покинули Нагорный Карабах.", {"nagorno-karabakh"}),
    ("Elections in Abkhazia and South Ossetia.", {"abkhazia", "south-ossetia"}),
    ("Выборы в Абхазии и Южной Осетии.", {"abkhazia", "south-ossetia"}),
    ("Camps in Xinjiang.", {"xinjiang"}),
    ("Лагеря в Синьцзяне.", {"xinjiang"}),
    ("Drones hit Crimea and the Donbas.", {"crimea", "donbas"}),
    ("Дроны атаковали Крым и Донбасс.", {"crimea", "donbas"}),
    ("Talks in Moscow on Central Asia.", set()),
    ("Переговоры в Москве о Центральной Азии.", set()),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_places(tag: Callable[..., list[Tag]], text: str, expected: set[str]) -> None:
    tags = [t for t in tag(text) if t.kind == "place"]
    assert {t.code for t in tags} == expected
    for t in tags:
        assert t.role is None and t.evidence and all(text[e.start:e.end] == e.phrase for e in t.evidence)


def test_places_and_regions(taxonomy: Taxonomy) -> None:
    assert taxonomy.place_parts("north-caucasus") >= {"chechnya", "dagestan", "ingushetia", "kabardino-balkaria",
                                                      "karachay-cherkessia", "north-ossetia", "adygea"}
    assert taxonomy.place_parts("fergana-valley") >= {"andijan", "namangan", "fergana", "osh", "jalal-abad",
                                                      "batken", "sughd", "isfara"}
    # part of a country: matched by places; whole countries: no places
    assert "dagestan" in taxonomy.region_places["north-caucasus"]
    assert "isfara" in taxonomy.region_places["fergana-valley"]
    assert {"gorno-badakhshan", "russian-far-east"} <= set(taxonomy.region_places)
    assert "central-asia" not in taxonomy.region_places and "south-caucasus" not in taxonomy.region_places
    for place in taxonomy.places.values():
        assert place.country is None or place.country in taxonomy.countries


def test_a_place_is_also_its_countrys_mention(tag: Callable[..., list[Tag]]) -> None:
    for text, country in [("Clashes in Dagestan.", "RU"), ("Столкновения в Исфаре.", "TJ"),
                          ("Протесты в Нукусе.", "UZ"), ("Выборы в Сухуми.", "GE")]:
        assert country in {t.code for t in tag(text) if t.kind == "country"}, text
