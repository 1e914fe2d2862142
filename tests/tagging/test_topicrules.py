"""Topic scoring arithmetic: repeats, title weight, NOT (negative weights, contexts) and AND (near)."""

from __future__ import annotations

import pytest

from aggregator.tagging.topicrules import Hit, Near, Term, TopicRule, near_bonus, phrase_score, score_hits


@pytest.mark.parametrize(("weight", "in_text", "in_title", "expected"), [
    (2.0, 1, 0, 2.0),
    (2.0, 2, 0, 3.0),  # each repeat adds half
    (2.0, 9, 0, 6.0),  # at most five occurrences count
    (2.0, 0, 1, 3.0),  # a title occurrence counts as two
    (-1.0, 3, 0, -1.0),  # a negative weight counts once
    (2.0, 0, 0, 0.0),
])
def test_phrase_score(weight: float, in_text: int, in_title: int, expected: float) -> None:
    assert phrase_score(weight, in_text, in_title) == expected


def _hit(rule: str, phrase: str, weight: float, field: str, start: int) -> Hit:
    return Hit(Term(rule, phrase, weight), field, start, start + len(phrase))


def test_score_hits_sums_per_rule() -> None:
    hits = [_hit("unrest", "riot", 2, "text", 0), _hit("unrest", "riot", 2, "title", 0),
            _hit("unrest", "rally", -1, "text", 9), _hit("context:sports", "NBA", 2, "text", 20)]
    assert score_hits(hits) == {"unrest": 2 * 2.0 - 1, "context:sports": 2.0}


RULE = TopicRule("armed-conflict", "Armed conflict", "", 3.0, (), (Near(("killed", "clash"), 3, 1.5),))


@pytest.mark.parametrize(("text", "bonus"), [
    ("two killed in a clash", 1.5),
    ("killed " + "word " * 10 + "clash", 0.0),  # too far apart
    ("two killed yesterday", 0.0),  # one of the phrases missing
])
def test_near_rule(text: str, bonus: float) -> None:
    hits = [_hit("armed-conflict", w, 1, "text", text.index(w)) for w in ("killed", "clash") if w in text]
    assert near_bonus(RULE, hits, {"text": text}) == bonus
