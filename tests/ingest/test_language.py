"""Language detection at ingest: the text decides, the feed's declared language is a hint."""

from __future__ import annotations

import pytest

from aggregator.ingest.language import REGION_LANGUAGES, detect

CASES = [
    # (title, text, declared, expected)
    ("Токаев провёл встречу", "Президент Казахстана Касым-Жомарт Токаев провёл встречу с главой МИД России.", None,
     "ru"),
    ("Tokayev meets", "Kazakhstan's president Kassym-Jomart Tokayev met Russia's foreign minister on Friday.", None,
     "en"),
    ("", "Президент Казахстана заявил, что страна продолжит сотрудничество с соседями по региону.", "en", "ru"),
    ("Қазақстан", "Қазақстан Республикасының Президенті Қасым-Жомарт Тоқаев бүгін Астанада кездесу өткізді.",
     None, "kk"),
    ("", "Кыргызстандын президенти Садыр Жапаров бүгүн Бишкекте жыйын өткөрдү жана билдирүү жасады.", None, "ky"),
    ("", "Президенти Тоҷикистон Эмомалӣ Раҳмон имрӯз дар шаҳри Душанбе бо сафири Чин мулоқот кард.", None, "tg"),
    ("", "Україна заявила про обстріл прикордонних районів і закликала партнерів посилити підтримку.", None, "uk"),
    ("", "Oʻzbekiston Respublikasi Prezidenti Shavkat Mirziyoyev bugun Toshkentda uchrashuv oʻtkazdi.", None, "uz"),
    ("", "Türkmenistanyň Prezidenti Serdar Berdimuhamedow şu gün Aşgabatda duşuşyk geçirdi.", None, "tk"),
    ("", "Azərbaycan Respublikasının Prezidenti İlham Əliyev bu gün Bakıda görüş keçirib.", None, "az"),
    ("", "Հայաստանի վարչապետ Նիկոլ Փաշինյանը այսօր հանդիպում է ունեցել Երևանում:", None, "hy"),
    ("", "საქართველოს პრემიერ-მინისტრმა დღეს თბილისში შეხვედრა გამართა.", None, "ka"),
    ("", "رئیس جمهور ایران امروز در تهران با وزیر خارجه روسیه دیدار کرد و درباره همکاری گفتگو کرد.", None, "fa"),
    # too little text to judge: the declared language stands
    ("Астана", "", "ru", "ru"),
    ("", "", "en", "en"),
    ("", "", None, None),
    # a declared language outside the region's set is one the detector cannot recognise: kept
    ("Berlin", "Die Bundesregierung hat heute neue Sanktionen gegen Russland beschlossen.", "de", "de"),
]


@pytest.mark.parametrize(("title", "text", "declared", "expected"), CASES)
def test_detect(title: str, text: str, declared: str | None, expected: str | None) -> None:
    assert detect(title, text, declared) == expected


def test_detected_languages_are_the_regions() -> None:
    assert len(REGION_LANGUAGES) == 13
    assert detect("", "Президент Казахстана заявил о сотрудничестве с соседями." * 3) in REGION_LANGUAGES


@pytest.mark.parametrize("text", ["\u0000\ufffd" * 50, "12345 67890 " * 100, "😀" * 100, "ꦲꦏ꧀ꦱꦫ" * 40, "x" * 1_000_000])
def test_bad_input_never_fails(text: str) -> None:
    detect("", text, None)
