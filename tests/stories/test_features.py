"""Language-independent features, table-driven: names meet across scripts and cases, numbers and dates."""

from __future__ import annotations

import pickle
from dataclasses import fields, replace

import pytest

from aggregator.stories.cluster import index_keys
from aggregator.stories.features import (
    MINHASH_SCHEME,
    extract,
    from_json,
    minhash,
    minhash_similarity,
    name_keys,
    near_copy,
    skeleton,
    to_json,
    transliterate,
)


@pytest.mark.parametrize(("english", "russian"), [
    ("Samarkand", "Самарканде"),
    ("Tokayev", "Токаевым"),
    ("Khalilov", "Халилова"),
    ("Tajikistan", "Таджикистана"),
    ("Makhachkala", "Махачкале"),
    ("Crocus", "Крокус"),
    ("Astana", "Астане"),
    ("Zhaparov", "Жапаров"),
])
def test_a_name_meets_its_russian_inflected_form(english: str, russian: str) -> None:
    assert name_keys(english) & name_keys(russian)


@pytest.mark.parametrize(("a", "b"), [
    ("Samarkand", "Astana"),
    ("Dagestan", "Nalchik"),
    ("Tokayev", "Putin"),
    ("Кабул", "Баку"),
])
def test_different_names_do_not_meet(a: str, b: str) -> None:
    assert not name_keys(a) & name_keys(b)


@pytest.mark.parametrize(("word", "latin", "key"), [
    ("Джалал-Абад", "jalal-abad", "jlbd"),
    ("Хорог", "khorog", "hrg"),
    ("Ереван", "erevan", "ervn"),
    ("Чечня", "chechnya", "čn"),
    ("Chechnya", "chechnya", "čn"),
])
def test_transliteration_and_skeleton(word: str, latin: str, key: str) -> None:
    assert transliterate(word) == latin
    assert skeleton(latin) == key


WORDS = " ".join(f"word{i} filler" for i in range(30))


@pytest.mark.parametrize(("text", "numbers"), [
    ("Tokayev won 81.31% of the vote", {"81.31"}),
    ("Токаев набрал 81,31% голосов", {"81.31"}),
    ("more than 1,200 people in 2024", {"1200"}),
    ("one 1 and the year 1999", set()),
    ("погибли 62 человека", {"62"}),
    ("İ5 and İ 300 dead", {"300"}),  # a letter before digits, even one that lower-cases to two characters
])
def test_numbers_ignore_years_and_decimal_commas(text: str, numbers: set[str]) -> None:
    assert extract("", text, []).numbers == numbers


@pytest.mark.parametrize(("text", "dates"), [
    ("on March 22 gunmen", {(3, 22)}),
    ("22 марта вооруженные люди", {(3, 22)}),
    ("on 9 May and 10 мая", {(5, 9), (5, 10)}),
    ("the 16th of September", {(9, 16)}),
    ("22 people died", set()),
    ("SEPTEMBER 3 and 4th of July", {(9, 3), (7, 4)}),
    ("в понедельник, 7 ноября, и 1 декабря", {(11, 7), (12, 1)}),
    ("the mayday rally, summarch 5", set()),  # a month only at the start of a word
    ("May 5th, June\n 6 and маяк 7", {(5, 5), (6, 6)}),
    ("123 May, May 123, a5 May, May 5a, 32 June, 0 July", set()),  # a day is one or two digits, 1 to 31
    ("5 of the May vote, 1.12 May", {(5, 12)}),
])
def test_day_month_dates_in_both_languages(text: str, dates: set[tuple[int, int]]) -> None:
    assert extract("", text, []).dates == dates


@pytest.mark.parametrize(("text", "tiny"), [
    ("", True),
    ("Breaking: explosion reported", True),
    (WORDS, False),
])
def test_tiny_texts(text: str, tiny: bool) -> None:
    assert extract("", text, []).tiny is tiny


def test_minhash_finds_copies_not_neighbours() -> None:
    base = [f"w{i}" for i in range(200)]
    copy = base[:190] + ["x"] * 10
    other = [f"v{i}" for i in range(200)]
    assert minhash_similarity(minhash(base), minhash(copy)) >= 0.8
    assert minhash_similarity(minhash(base), minhash(other)) < 0.1
    assert minhash(base[:5]) == ()


def test_minhash_signatures_keep_their_stored_form() -> None:
    """Signatures are stored with each post and compared with new ones for the window's 72 hours and
    by recluster: a change in how they are computed must come with a new MINHASH_SCHEME."""
    tokens = "the border guards of kyrgyzstan and tajikistan exchanged fire near the village of kok tash on monday"
    assert MINHASH_SCHEME == 2
    assert minhash(tokens.split())[:3] == (19885464533417464, 3552931263164956015, 2335658463983582038)


def test_signatures_of_an_earlier_scheme_match_only_their_own() -> None:
    """Posts stored under scheme 1 (before the words were hashed once each) keep comparing with each
    other, as they did at ingest (recluster replays them), and are never a copy of a new post."""
    text = " ".join("word" + "".join(chr(97 + int(d)) for d in str(i)) for i in range(40))  # 40 distinct words
    post = extract("Clash on the border", text, [])
    stored = to_json(post)
    old_a = {**{k: v for k, v in stored.items() if k != "m2"}, "m": [n + 1 for n in stored["m2"]]}
    old_b = dict(old_a)
    a, b = from_json(old_a), from_json(old_b)
    assert (a.scheme, b.scheme, from_json(stored).scheme, post.scheme) == (1, 1, 2, 2)
    assert to_json(a) == old_a
    assert near_copy(a, b) == 1.0 and near_copy(post, from_json(stored)) == 1.0
    assert near_copy(a, post) == 0.0
    bands = {k for k in index_keys(post) if k.startswith("b")}
    assert bands and not bands & set(index_keys(a))


def test_features_cross_processes_whole() -> None:
    """Features are pickled from the parse processes to the worker: every field, as it was (no field
    left at a default, so one the pickled form forgot would show)."""
    text = "Kyrgyz and Tajik border guards exchanged fire near Kok-Tash on 5 May; 3 killed, 12 wounded. " * 3
    post = replace(extract("Clash on the border", text, []), countries=frozenset({"KG", "TJ"}),
                   places=frozenset({"kok-tash"}), topics=frozenset({"border"}), scheme=7)
    assert all(getattr(post, f.name) != f.default for f in fields(post))
    again = pickle.loads(pickle.dumps(post))
    assert again == post and type(again.words) is type(post.words)
    assert list(again.words) == list(post.words)  # the order keys first appeared in


@pytest.mark.parametrize(("title", "text", "words", "names"), [
    # keys counted in the order they first appear (the stored form keeps it, and recluster replays it)
    ("", "Border guards said border talks with Tashkent resume; Tashkent agreed.",
     {"brdr": 2, "grd": 1, "grds": 1, "tlk": 1, "tlks": 1, "tshknt": 2, "rsm": 1, "agrd": 1}, {"tshknt"}),
    # the first word is capitalized anyway: a name only when written so again later
    ("Tashkent talks", "Officials met in Tashkent.",
     {"tshknt": 2, "tlk": 1, "tlks": 1, "ofkl": 1, "ofkls": 1}, {"tshknt", "ofkl", "ofkls"}),
    ("Talks resume", "Officials met in Dushanbe.",
     {"tlk": 1, "tlks": 1, "rsm": 1, "ofkl": 1, "ofkls": 1, "dshnb": 1}, {"ofkl", "ofkls", "dshnb"}),
])
def test_word_keys_are_counted_in_first_seen_order(title: str, text: str, words: dict[str, int],
                                                   names: set[str]) -> None:
    f = extract(title, text, [])
    assert list(f.words.items()) == list(words.items())
    assert f.names == names
