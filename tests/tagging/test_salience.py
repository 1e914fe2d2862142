"""Topic salience: the features a topic gets from where its cues sit, and the logistic model over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.errors import ConfigError
from aggregator.tagging.salience import (
    FEATURES,
    Cue,
    TopicModel,
    features,
    fit,
    layout,
    load_model,
    model_yaml,
    sentence_starts,
)


def _features(cues: list[Cue], text: str, score: float = 1.0, total: float = 1.0, context: float = 0.0) -> dict:
    return features(cues, 3.0, layout(text), total, score, context)


BODY = ("Police seized heroin at the border. The haul was the largest this year. "
        "Officials said drug trafficking routes have shifted.")


@pytest.mark.parametrize(("case", "cues", "check"), [
    ("title counts apart from the body", [Cue("title", 0, "heroin", 2.0)],
     lambda x: x["title"] > 0 and x["lead"] == 0 and x["sentences"] == 0),
    ("two sentences", [Cue("text", 14, "heroin", 2.0), Cue("text", 93, "drug trafficking", 3.0)],
     lambda x: x["sentences"] == pytest.approx(1.0986, abs=1e-3) and x["best_sentence"] == 1.0),
    ("one phrase repeated is one distinct cue", [Cue("text", 14, "heroin", 2.0), Cue("text", 30, "heroin", 2.0)],
     lambda x: x["distinct"] == pytest.approx(0.6931, abs=1e-3) and x["distinct_weight"] == pytest.approx(2 / 3)),
    ("strong cues are those near the threshold", [Cue("text", 14, "heroin", 1.0)], lambda x: x["strong"] == 0),
])
def test_features(case: str, cues: list[Cue], check) -> None:
    x = _features(cues, BODY)
    assert set(x) == set(FEATURES)
    assert check(x), (case, x)


def test_actor_share() -> None:
    """The share of distinct cue weight that names who acts rather than what happens."""
    x = _features([Cue("text", 0, "foreign minist*", 2.0, True), Cue("text", 40, "talks", 1.0),
                   Cue("text", 60, "foreign minist*", 2.0, True)], BODY)
    assert x["actors"] == pytest.approx(2 / 3)
    assert _features([Cue("text", 0, "talks", 1.0)], BODY)["actors"] == 0.0


def test_lead_of_a_short_excerpt_is_its_opening_only() -> None:
    """In a 1,000-character excerpt the first 800 characters are not a lead: the lead is at most 40 %."""
    text = "Word " * 200
    assert layout(text).lead == 400
    assert _features([Cue("text", 500, "heroin", 2.0)], text)["lead"] == 0.0
    assert layout("Word " * 1000).lead == 800


def test_quoted_cue() -> None:
    text = 'He said: "this is terrorism, plain and simple." Nobody agreed.'
    x = _features([Cue("text", text.index("terrorism"), "terroris*", 2.0)], text)
    assert x["quoted"] == 1.0
    plain = "This is terrorism. Nobody agreed."
    assert _features([Cue("text", plain.index("terrorism"), "terroris*", 2.0)], plain)["quoted"] == 0.0


def test_sentences_split_on_ends_and_paragraphs() -> None:
    text = "One. Two!\n\nThree\nFour? «Five»"
    starts = sentence_starts(text)
    assert [text[s:].split()[0] for s in starts] == ["One.", "Two!", "Three", "Four?", "«Five»"]


def test_fit_learns_the_direction_of_evidence() -> None:
    rows = []
    for i in range(200):
        strong = i % 2 == 0
        x = {f: 0.0 for f in FEATURES} | {"best_sentence": 1.5 if strong else 0.3, "share": 0.8 if strong else 0.1}
        rows.append(("terrorism" if i % 4 < 2 else "cyber", x, strong))
    model = fit(rows, ["terrorism", "cyber"])
    yes = {"best_sentence": 1.5, "share": 0.8}
    no = {"best_sentence": 0.3, "share": 0.1}
    for topic in ("terrorism", "cyber"):
        assert model.probability(topic, yes) > 0.8 > 0.2 > model.probability(topic, no)


def test_model_file_round_trip(tmp_path: Path) -> None:
    model = TopicModel({"score": 1.5, "share": -0.25}, {"cyber": -1.0}, 0.0, 0.45)
    (tmp_path / "topic-model.yaml").write_text(model_yaml(model, "test"), encoding="utf-8")
    loaded = load_model(tmp_path, ["cyber"])
    assert loaded is not None and loaded.weights == model.weights and loaded.bias == model.bias
    assert loaded.cutoff == 0.45


@pytest.mark.parametrize(("content", "message"), [
    ("weights: {bogus: 1}\n", "unknown features"),
    ("weights: {score: 1}\nbias: {nope: 1}\n", "unknown topics"),
    ("weights: {score: high}\n", "expected a number"),
])
def test_bad_model_file_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "topic-model.yaml").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_model(tmp_path, ["cyber"])


def test_no_model_file_means_rule_thresholds(tmp_path: Path) -> None:
    assert load_model(tmp_path, ["cyber"]) is None
