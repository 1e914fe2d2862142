"""The 12 security topics: for each, texts that are about it and texts that only brush against it.

All texts are written for these tests. A positive is a few sentences whose main point is the topic; a
negative either mentions the topic's words in passing or uses them in another sense (sports, gadgets).
"""

from __future__ import annotations

import pytest

from tests.tagging.helpers import topics

POSITIVE = [
    ("terrorism", "Attack on a rail station",
     "A suicide bomber blew himself up at the station, and a local affiliate of the Islamic State claimed "
     "responsibility. Investigators opened a terrorism case against three alleged accomplices."),
    ("terrorism", "",
     "The security service said it had broken up a cell recruiting young men for jihadist groups abroad. "
     "Officers seized extremist literature and detained the suspected recruiter on terrorism charges."),
    ("armed-conflict", "Shelling resumes along the front",
     "Heavy fighting continued for a third day as artillery shelling hit villages near the front line. "
     "Both armies reported casualties, and a ceasefire agreed last month has collapsed."),
    ("armed-conflict", "",
     "Rebels launched an offensive on the provincial capital, and government forces answered with airstrikes. "
     "Dozens of fighters were killed in the clashes, the insurgents said."),
    ("military", "Joint drills near the border",
     "The two armies began joint military exercises involving 5,000 troops, tanks and attack helicopters. "
     "The defence ministry said the drills would test air defence units and new drones."),
    ("military", "",
     "The government approved a record defence budget to buy fighter jets and ballistic missiles, and "
     "pledged to expand military cooperation with its ally, including arms production at home."),
    ("border-security", "Border crossing closed",
     "Border guards closed the main crossing after a dispute over the undemarcated stretch of the frontier. "
     "Trucks queued for kilometres while the border service checked every vehicle."),
    ("border-security", "",
     "The commission resumed talks on delimitation and demarcation of the border, which still has "
     "disputed sections and enclaves that cause incidents between villagers and border troops."),
    ("crime-trafficking", "Heroin seized on the northern route",
     "Police seized 300 kilograms of heroin hidden in a truck, the largest haul this year. Officials say "
     "drug trafficking networks have shifted smuggling routes after the border crackdown."),
    ("crime-trafficking", "",
     "Prosecutors charged the leaders of an organised crime group with human trafficking and extortion, "
     "saying the gang smuggled migrants and laundered the proceeds."),
    ("corruption", "Minister arrested for bribery",
     "The former minister was arrested on suspicion of taking bribes worth $2 million, and investigators "
     "say he embezzled funds from a road project. The anti-corruption agency froze his accounts."),
    ("corruption", "",
     "Activists published an investigation into the kleptocracy around the ruling family, tracing stolen "
     "assets held offshore and urging foreign banks to help with asset recovery."),
    ("unrest", "Protesters clash with riot police",
     "Thousands of protesters took to the streets of the capital, and riot police used tear gas and water "
     "cannon to disperse the crowds. The president declared a state of emergency and a curfew."),
    ("unrest", "",
     "Demonstrators stormed the regional administration building as the protests over fuel prices turned "
     "violent; looting was reported overnight."),
    ("human-rights", "Journalist jailed",
     "Rights groups condemned the sentence handed to the journalist, calling him a political prisoner. "
     "Human Rights Watch said detainees had been tortured and that press freedom was in steep decline."),
    ("human-rights", "",
     "Parliament passed a foreign agent law that critics say will be used to repress civil society and "
     "independent media, and to persecute believers of minority faiths."),
    ("cyber", "Hackers breach ministry servers",
     "Hackers broke into the ministry's servers and leaked personal data of thousands of citizens. "
     "Officials called it a large-scale cyberattack and said malware had been planted in the network."),
    ("cyber", "",
     "Authorities shut down the mobile internet in the region for a week, an internet shutdown that "
     "rights monitors said was meant to stop a disinformation campaign from spreading."),
    ("migration", "Migrant workers face new rules",
     "Labour migrants will need a new work permit, and those without one face deportation. Remittances "
     "from migrant workers make up a quarter of the economy."),
    ("migration", "",
     "Thousands of refugees crossed the border seeking asylum, and the diaspora organised shelters for "
     "displaced families."),
    ("elections-governance", "Referendum on a new constitution",
     "Voters approved constitutional amendments in a referendum that extends the presidential term. "
     "Election observers reported ballot stuffing at several polling stations."),
    ("elections-governance", "",
     "The president dismissed the government and announced a cabinet reshuffle, naming a successor to "
     "the prime minister ahead of snap elections."),
    ("diplomacy", "Foreign ministers meet",
     "The foreign ministers held talks on bilateral relations and signed a treaty on strategic partnership. "
     "Both sides agreed to open a new embassy and to hold a summit next year."),
    ("diplomacy", "",
     "The country recalled its ambassador and imposed sanctions after the envoy was expelled, while "
     "mediators urged a peaceful resolution of the diplomatic row."),
]

NEGATIVE = [
    ("terrorism", "", "The film, a thriller about a terrorist plot, opened in cinemas this week."),
    ("terrorism", "Thunder beat the Spurs",
     "The forward had a terrific night shooting from deep, scoring 31 points in the fourth quarter and "
     "overtime as the Thunder won their NBA playoff game; the coach praised the team's defence."),
    ("armed-conflict", "", "The minister said trade talks had been a battle, but agreed on a compromise."),
    ("armed-conflict", "Guards trade blows in the final",
     "The team rallied in the second half to clash with the champions in a tense final of the tournament. "
     "The coach said the league season had been a battle."),
    ("military", "", "A retired army officer opened a bakery in the old town."),
    ("military", "Think tanks study migration",
     "Researchers from two think tanks visited the city to study labour migration and the integration of "
     "migrant families."),
    ("border-security", "", "The company expanded across borders into three new markets."),
    ("border-security", "", "Pilgrims travelled from across the region, some crossing the border to attend."),
    ("crime-trafficking", "", "The pharmacy chain said sales of cold drugs rose in winter."),
    ("crime-trafficking", "New phone unveiled",
     "The handset ships with a faster chip and a better camera; pre-orders start on Friday."),
    ("corruption", "", "The file was corrupted during the download and had to be restored."),
    ("corruption", "", "The billionaire opened a new museum of modern art."),
    ("unrest", "Thunder rallies for win",
     "The Thunder rallied in the fourth quarter for an NBA win, scoring 12 points in overtime as the crowd "
     "roared; the coach praised the rebounds."),
    ("unrest", "", "The band's first album was a quiet revolution in folk music."),
    ("human-rights", "", "The suspect was detained and released on bail on Monday."),
    ("human-rights", "", "Many activists attended the climate conference."),
    ("cyber", "Apple unveils new iPhone",
     "The iPhone has a new camera and a faster processor, and iOS adds digital wallet features; the "
     "smartphone goes on sale in September with pre-orders online."),
    ("cyber", "", "The newspaper moved its archive online."),
    ("migration", "", "Flocks of geese begin their autumn migration south."),
    ("migration", "", "The minister visited compatriots at the embassy reception."),
    ("elections-governance", "", "The company elected a new chair of its board."),
    ("elections-governance", "", "The prime minister opened a new bridge."),
    ("diplomacy", "", "The two companies signed a supply agreement."),
    ("diplomacy", "", "The tennis star's agent said talks on a new contract were going well."),
]


@pytest.mark.parametrize(("topic", "title", "text"),
                         [pytest.param(*row, id=f"{row[0]}-{i}") for i, row in enumerate(POSITIVE)])
def test_topic_assigned(tag, topic: str, title: str, text: str) -> None:
    tags = tag(text, title=title)
    assert topic in topics(tags), f"{topic} missing; got {topics(tags)}"
    found = next(t for t in tags if t.code == topic)
    assert 0.0 < found.score <= 1.0 and found.evidence
    for e in found.evidence:
        source = title if e.field == "title" else text
        assert source[e.start : e.end] == e.phrase


@pytest.mark.parametrize(("topic", "title", "text"),
                         [pytest.param(*row, id=f"{row[0]}-{i}") for i, row in enumerate(NEGATIVE)])
def test_topic_not_assigned(tag, topic: str, title: str, text: str) -> None:
    assert topic not in topics(tag(text, title=title))


def test_every_topic_has_cases(taxonomy) -> None:
    assert {row[0] for row in POSITIVE} == set(taxonomy.topics) == {row[0] for row in NEGATIVE}


def test_source_default_topic_is_a_weak_prior(tag) -> None:
    passing = "The report mentioned smuggling once."
    assert "crime-trafficking" not in topics(tag(passing))
    assert "crime-trafficking" not in topics(tag("Nothing relevant here.", default_topics=("crime-trafficking",)))
    near = "Police seized cigarettes, saying smuggling across the river continued."
    assert "crime-trafficking" not in topics(tag(near))
    assert "crime-trafficking" in topics(tag(near, default_topics=("crime-trafficking",)))


def test_topic_in_title_counts_more(tag) -> None:
    text = "Officials discussed the protest."
    assert "unrest" not in topics(tag(text))
    assert "unrest" in topics(tag(text, title="Protest over fuel prices spreads"))


@pytest.mark.parametrize(("case", "title", "text"), [
    ("empty", "", ""),
    ("unknown script", "ᚠᚢᚦᚨᚱᚲ", "ᚷᚹᚺᚾᛁᛃ ᛇᛈᛉᛊ ᛏᛒᛖᛗ. " * 200),
    ("1 MB of text", "Border guards clash", ("Border guards exchanged fire near the frontier. " * 21000)[:1_000_000]),
    ("1 MB without sentence ends", "", "terrorism " * 100_000),
])
def test_bad_input_is_tagged_or_left_alone_quickly(tag, case: str, title: str, text: str) -> None:
    import time

    started = time.perf_counter()
    tags = tag(text, title=title)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, (case, elapsed)
    assert all(t.score > 0.0 for t in tags if t.kind == "topic")


@pytest.mark.parametrize(("topic", "text", "expected"), [
    ("border-security", "Пограничники Киргизии и Таджикистана обсудили демаркацию границы. "
     "Пограничная служба усилила охрану участков, где проходят спорные пограничные линии.", True),
    ("corruption", "Бывшего министра задержали по делу о взятке. Следствие считает, что он получил взятку "
     "и организовал хищение бюджетных средств.", True),
    ("armed-conflict", "Футболисты провели атаку на ворота соперника, но удар пришелся в штангу.", False),
])
def test_russian_cues_inflect_from_base_forms(tag, topic: str, text: str, expected: bool) -> None:
    assert (topic in topics(tag(text))) is expected


@pytest.mark.parametrize(("topic", "text"), [
    ("diplomacy", "The foreign minister said the ministry of foreign affairs had counted the migrants who "
     "returned, and the embassy published the list; the foreign minister thanked volunteers."),
    ("diplomacy", "Глава МИД сообщил, сколько мигрантов вернулось. Министр иностранных дел поблагодарил "
     "волонтёров, а посольство опубликовало список."),
    ("terrorism", "Талибы запретили женщинам учиться в университетах. «Талибан» объявил о решении после "
     "заседания правительства талибов."),
])
def test_actors_alone_do_not_make_a_topic(tag, topic: str, text: str) -> None:
    """Who acts (a foreign ministry, the Taliban) is not what the article is about."""
    assert topic not in topics(tag(text))


def test_actors_with_what_they_do_make_a_topic(tag) -> None:
    text = ("The foreign ministers held talks on bilateral relations and signed a strategic partnership; "
            "the ambassador said the summit had opened a new chapter in diplomatic relations.")
    assert "diplomacy" in topics(tag(text))


def test_actors_must_be_phrases_of_the_topic(tmp_path) -> None:
    import shutil

    from aggregator.errors import ConfigError
    from aggregator.tagging import load_taxonomy
    from aggregator.tagging.taxonomy import DEFAULT_FOLDER

    copy = tmp_path / "taxonomy"
    shutil.copytree(DEFAULT_FOLDER, copy)
    path = copy / "topics.yaml"
    path.write_text(path.read_text("utf-8").replace('actors: ["diplomat*",', 'actors: ["no such phrase",', 1),
                    "utf-8")
    with pytest.raises(ConfigError, match="no such phrase"):
        load_taxonomy(copy)


def test_russian_sports_context_vetoes_war_words(tag) -> None:
    """«Перестрелка», «обстрел ворот», «атака» in a football report: the Russian sports context vetoes them."""
    text = ("Матч превратился в перестрелку: обстрел ворот не прекращался, атака следовала за атакой, удар за "
            "ударом. Наступление хозяев в конце принесло гол, и болельщики футболистов ликовали.")
    assert "armed-conflict" not in topics(tag(text, title="Перестрелка на стадионе"))
