"""Country mentions: the judgements of the labeling guide, one table row per case (sentences written here)."""

from __future__ import annotations

import pytest

from tests.tagging.helpers import countries, primaries

# (case id, title, text, countries that must be tagged, countries that must not be)
MENTIONS = [
    ("georgia-country", "", "Police in Tbilisi detained dozens as Georgia's parliament met.", {"GE"}, {"US"}),
    ("georgia-us-state", "", "Voters in Atlanta queued for hours as Georgia counted ballots in the Senate race.",
     {"US"}, {"GE"}),
    ("georgia-person", "", "The painter Georgia O'Keeffe spent her later years in the desert.", set(), {"GE"}),
    ("jordan-person", "", "Michael Jordan scored forty points for the Bulls in the fourth quarter.", set(), {"JO"}),
    ("jordan-person-propagates", "", "Jordan Peterson gave a lecture on Monday. Later, Jordan told reporters "
     "he would return next year.", set(), {"JO"}),
    ("jordan-country", "", "King Abdullah II of Jordan received the envoy in Amman on Sunday.", {"JO"}, set()),
    ("chad-person", "", "Chad Kowalski, a drummer from Ohio, toured Europe this summer.", {"US"}, {"TD"}),
    ("chad-country", "", "Troops from Chad joined the regional force fighting insurgents near the lake.",
     {"TD"}, set()),
    ("turkey-bird", "", "We roasted a turkey for Thanksgiving and served it with cranberry sauce.", set(), {"TR"}),
    ("turkey-bird-capitalised", "How to Roast a Turkey", "Baste the bird every half hour; the oven should be hot.",
     set(), {"TR"}),
    ("turkey-country", "", "Turkey closed its airspace to the flights, officials in Ankara said.", {"TR"}, set()),
    ("turkiye-accented", "", "Türkiye hosted the talks in Istanbul.", {"TR"}, set()),
    ("new-mexico", "", "Wildfires spread across New Mexico on Tuesday, forcing evacuations.", {"US"}, {"MX"}),
    ("mexico", "", "Mexico deployed the National Guard to its northern border.", {"MX"}, set()),
    ("gulf-of-mexico", "", "Storms closed oil platforms in the Gulf of Mexico.", set(), {"MX"}),
    ("papua-new-guinea", "", "Papua New Guinea declared a state of emergency after the riots.", {"PG"}, {"GN"}),
    ("equatorial-guinea", "", "Equatorial Guinea sent a delegation.", {"GQ"}, {"GN"}),
    ("guinea-bissau", "", "Soldiers surrounded the presidential palace in Guinea-Bissau.", {"GW"}, {"GN"}),
    ("guinea", "", "Guinea's junta postponed the vote in Conakry.", {"GN"}, {"GQ", "GW", "PG"}),
    ("guinea-pig", "", "Guinea pigs were used in the laboratory trial.", set(), {"GN"}),
    ("niger-not-nigeria", "", "Niger's junta ordered the foreign troops to leave Niamey.", {"NE"}, {"NG"}),
    ("nigeria-not-niger", "", "Nigeria's army raided camps in the Niger Delta.", {"NG"}, {"NE"}),
    ("south-sudan", "", "South Sudan's government in Juba denied the report.", {"SS"}, {"SD"}),
    ("sudan", "", "Fighting in Sudan's Darfur region displaced thousands.", {"SD"}, {"SS"}),
    ("organisations-only", "", "NATO, the EU and the UN condemned the move; the CSTO and the SCO met in private, "
     "and the OSCE sent observers.", set(), {"US", "CN", "RU", "BE"}),
    ("historical-states", "", "After the collapse of the Soviet Union, the USSR's arsenal was divided.",
     set(), {"RU"}),
    ("language-hyphen", "", "Russian-language media in Kazakhstan lost their licences.", {"KZ"}, {"RU"}),
    ("language-spoken", "", "The minister in Astana delivered the speech in Russian.", {"KZ"}, {"RU"}),
    ("language-list", "", "Signs in Bishkek are written in Russian and Kyrgyz, officials say.", {"KG"}, {"RU"}),
    ("demonym-not-language", "", "Russian troops crossed into the region.", {"RU"}, set()),
    ("currency", "", "Officials in Almaty said the fund held US$8 billion in assets.", {"KZ"}, {"US"}),
    ("publication", "", "Documents seen by The Washington Post describe the plant in Tatarstan.", {"RU"}, {"US"}),
    ("washington-government", "", "Washington imposed new sanctions on the bank.", {"US"}, set()),
    ("region-alone", "", "Central Asia and the Caucasus face water shortages, as does the Middle East.",
     set(), {"KZ", "UZ", "KG", "TJ", "TM", "AM", "AZ", "GE"}),
    ("fergana-valley", "", "Tensions rose again in the Fergana Valley.", {"UZ", "KG", "TJ"}, set()),
    ("nagorno-karabakh", "", "Shelling was reported in Nagorno-Karabakh overnight.", {"AZ"}, {"AM"}),
    ("north-caucasus", "", "Security raids continued across the North Caucasus.", {"RU"}, set()),
    ("uyghurs-alone", "", "Uyghurs abroad described their relatives' detention.", set(), {"CN"}),
    ("dagestan", "", "Gunmen attacked a synagogue in Dagestan.", {"RU"}, set()),
    ("chechen", "", "Chechen fighters were seen near the front.", {"RU"}, set()),
    ("crimea-donbas", "", "Drones struck Crimea while shelling continued in the Donbas.", {"UA"}, {"RU"}),
    ("karakalpakstan", "", "Protests broke out in Karakalpakstan over the constitution.", {"UZ"}, set()),
    ("xinjiang", "", "Camps in Xinjiang were expanded.", {"CN"}, set()),
    ("gorno-badakhshan", "", "Internet access was cut in Gorno-Badakhshan.", {"TJ"}, {"AF"}),
    ("kremlin-metonym", "", "The Kremlin denied the report.", {"RU"}, set()),
    ("leader", "", "Tokayev signed the decree on Friday.", {"KZ"}, set()),
    ("capital-metonym", "", "Tashkent and Dushanbe signed a water accord.", {"UZ", "TJ"}, set()),
    ("lowercase-name", "", "the factory in russia delivered the drones", {"RU"}, set()),
    ("china-lowercase", "", "The museum displays fine china and silver.", set(), {"CN"}),
    ("web-address", "", "Read more at ferghana.ru and kun.uz for local reports.", set(), {"UZ", "RU"}),
    ("hyphenated-pair", "", "Kyrgyz-Tajik talks resumed.", {"KG", "TJ"}, set()),
    ("us-abbreviation", "", "The U.S. and the UK issued a joint statement; us and them.", {"US", "GB"}, set()),
]


@pytest.mark.parametrize(("title", "text", "wanted", "unwanted"),
                         [pytest.param(*row[1:], id=row[0]) for row in MENTIONS])
def test_country_mentions(tag, title: str, text: str, wanted: set[str], unwanted: set[str]) -> None:
    found = countries(tag(text, title=title))
    assert wanted <= found, f"missing {wanted - found}"
    assert not (found & unwanted), f"unexpected {found & unwanted}"


DATELINES = [
    # A blogger's home town in mixed case is not a place of the story...
    ("soft-not-backed", "Boston, Nov. 17 – Kazakh officials said the talks had stalled.", {"KZ"}, {"US"}),
    ("soft-numeric", "Brussels 06.01.2022 Jane Roe The decision on Kazakhstan was taken.", {"KZ"}, {"BE"}),
    # ...unless the story is about that place anyway.
    ("soft-backed", "Moscow, March 3 – Russian officials confirmed the arrests.", {"RU"}, set()),
    # A wire dateline names where the events happen.
    ("wire", "ALMATY, Jan 6 (Reuters) - Police fired tear gas at protesters.", {"KZ"}, set()),
    ("wire-qualified", "BISHKEK, Kyrgyzstan: Officials met on Friday.", {"KG"}, set()),
    ("wire-after-byline", "By Jane Roe and John Doe DUSHANBE (Reuters) - The talks ended.", {"TJ"}, set()),
    ("mixed-with-agency", "Tashkent, Uzbekistan (Example News) — The ministry said.", {"UZ"}, set()),
]


@pytest.mark.parametrize(("text", "wanted", "unwanted"), [pytest.param(*row[1:], id=row[0]) for row in DATELINES])
def test_datelines(tag, text: str, wanted: set[str], unwanted: set[str]) -> None:
    found = countries(tag(text))
    assert wanted <= found and not (found & unwanted), found


def test_wire_dateline_is_evidence_and_raises_the_score(tag) -> None:
    kz = next(t for t in tag("ALMATY, Jan 6 (Reuters) - Police dispersed the crowd.") if t.code == "KZ")
    assert [e.rule for e in kz.evidence] == ["dateline"]
    assert kz.evidence[0].phrase == "ALMATY"


CLUTTER = [
    ("comments", "Officials in Kabul met.\n\nNo comments:\n\nPost a Comment\n", {"AF"}, set()),
    ("related-block", "Officials in Kabul met.\nRelated stories\nChina opens a new port\nIran holds drills\n",
     {"AF"}, {"CN", "IR"}),
    ("related-inline", "Officials in Kabul met.\nRelated: Pakistan closes crossing\n", {"AF"}, {"PK"}),
    ("menu", "Home | Russia | Ukraine | World\nOfficials in Kabul met.", {"AF"}, {"RU", "UA"}),
    ("share-buttons", "Officials in Kabul met.\nShare on Facebook\nTwitter | WhatsApp | Email\n", {"AF"}, set()),
    ("cookie-banner", "We use cookies to measure visits from Germany and France.\nOfficials in Kabul met.",
     {"AF"}, {"DE", "FR"}),
    ("appeal", "Our journalism is banned in Russia. Please support us.\nOfficials in Kabul met.", {"AF"}, {"RU"}),
]


@pytest.mark.parametrize(("text", "wanted", "unwanted"), [pytest.param(*row[1:], id=row[0]) for row in CLUTTER])
def test_page_clutter_is_ignored(tag, text: str, wanted: set[str], unwanted: set[str]) -> None:
    found = countries(tag(text))
    assert wanted <= found and not (found & unwanted), found


PRIMARY = [
    ("pair-in-title", "Kyrgyz and Tajik border guards exchange fire",
     "Guards of Kyrgyzstan and Tajikistan exchanged fire near the disputed stretch. Russia urged calm.",
     {"KG", "TJ"}, {"RU"}),
    ("title-country", "Uzbekistan reports a data breach",
     "The ministry in Tashkent said hackers reached three databases. Experts in Russia and Kazakhstan commented.",
     {"UZ"}, {"RU", "KZ"}),
    ("no-country", "New phone unveiled", "The handset has a brighter screen and a bigger battery.", set(), set()),
]


@pytest.mark.parametrize(("title", "text", "wanted", "unwanted"),
                         [pytest.param(*row[1:], id=row[0]) for row in PRIMARY])
def test_primary_roles(tag, title: str, text: str, wanted: set[str], unwanted: set[str]) -> None:
    found = primaries(tag(text, title=title))
    assert wanted <= found and not (found & unwanted), found


def test_source_default_breaks_a_tie_but_creates_nothing(tag) -> None:
    text = "Officials from Kazakhstan and Uzbekistan met."
    tied = {t.code: t.score for t in tag(text) if t.kind == "country"}
    assert tied["KZ"] == tied["UZ"]
    favoured = tag(text, default_countries=("UZ", "MN"))
    scores = {t.code: t.score for t in favoured if t.kind == "country"}
    assert scores["UZ"] > scores["KZ"]
    assert "MN" not in scores


def test_country_evidence_points_at_the_words(tag) -> None:
    text = "Yesterday the Kremlin said that Kazakh troops would stay."
    for t in tag(text):
        for e in t.evidence:
            assert text[e.start : e.end] == e.phrase
    ru = next(t for t in tag(text) if t.code == "RU")
    assert ru.evidence[0].phrase in ("the Kremlin", "Kremlin")


def test_labels_are_matched_with_their_own_offsets(tag) -> None:
    tags = tag("Nothing here names a place.", labels=("World", "Armenia"))
    am = next(t for t in tags if t.code == "AM")
    label_text = "World\nArmenia"
    assert [(e.field, label_text[e.start : e.end]) for e in am.evidence] == [("label", "Armenia")]
