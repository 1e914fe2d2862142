"""Checks against the shared labeled data (skipped when ../shared/data is absent).

The seed post is the archetype the project started from: its tags are spelled out in the brief. The dev
set is the labeled sample: the targets are the project's acceptance bar, asserted here so a taxonomy edit
that breaks them fails the build.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.tagging import Tag, TagInput, Taxonomy, tag_post
from aggregator.tagging.evaluate import evaluate

# The issue's target for topics micro-F1 on dev-en, cross-validated (figures in
# aggregator/defaults/taxonomy/README.md).
TOPICS_F1_TARGET = 0.85


def _seed_post(shared_data: Path) -> TagInput:
    lines = (shared_data / "seed" / "window-on-eurasia-2022-01-07.txt").read_text(encoding="utf-8").splitlines()
    non_empty = [i for i, line in enumerate(lines) if line.strip()]
    # Page layout: date header, title, author, body. The title is the second non-empty line.
    title_at = non_empty[1]
    return TagInput(title=lines[title_at].strip(), text="\n".join(lines[title_at + 1 :]))


@pytest.fixture(scope="module")
def seed_tags(shared_data: Path, taxonomy: Taxonomy) -> tuple[TagInput, list[Tag]]:
    post = _seed_post(shared_data)
    return post, tag_post(post, taxonomy)


def test_seed_countries(seed_tags) -> None:
    _, tags = seed_tags
    roles = {t.code: t.role for t in tags if t.kind == "country"}
    assert roles["KZ"] == roles["RU"] == "primary"
    assert {"AF", "UZ", "KG", "TJ"} <= set(roles)
    assert all(roles[c] == "mentioned" for c in ("AF", "UZ", "KG", "TJ"))
    assert "US" not in roles, "the Staunton dateline is the blogger's home town"


def test_seed_topics(seed_tags) -> None:
    _, tags = seed_tags
    assert {"terrorism", "military", "crime-trafficking", "corruption", "diplomacy"} <= {
        t.code for t in tags if t.kind == "topic"}


# Stems that the evidence of each tag must contain: the tag rests on the right words, not on clutter.
SEED_EVIDENCE = {
    "KZ": {"kazakh", "tokayev"},
    "RU": {"russia", "moscow"},
    "AF": {"afghanistan"},
    "UZ": {"fergana"},
    "KG": {"fergana"},
    "TJ": {"fergana"},
    "terrorism": {"taliban", "militant"},
    "military": {"military", "drone"},
    "crime-trafficking": {"drug"},
    "corruption": {"corruption"},
    "diplomacy": {"diploma"},
}


@pytest.mark.parametrize(("code", "stems"), list(SEED_EVIDENCE.items()))
def test_seed_evidence_points_at_the_right_words(seed_tags, code: str, stems: set[str]) -> None:
    post, tags = seed_tags
    tag = next(t for t in tags if t.code == code)
    for e in tag.evidence:
        source = post.title if e.field == "title" else post.text
        assert source[e.start : e.end] == e.phrase
    phrases = " | ".join(e.phrase.lower() for e in tag.evidence)
    assert all(stem in phrases for stem in stems), phrases


def test_seed_boilerplate_is_not_evidence(seed_tags) -> None:
    post, tags = seed_tags
    tail = post.text.index("No comments:")
    assert all(e.start < tail for t in tags for e in t.evidence if e.field == "text")


@pytest.fixture(scope="module")
def dev_en(shared_data: Path, taxonomy: Taxonomy) -> dict:
    path = shared_data / "tagging" / "dev-en.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return evaluate(records, taxonomy, cv=5)


def test_dev_en_meets_the_targets_cross_validated(dev_en: dict) -> None:
    """The issue's English targets, on figures from models that did not see the article (5 folds)."""
    cv = dev_en["languages"]["en"]["cv"]
    assert cv["countries_f1"] >= 0.95
    assert cv["primary_accuracy"] >= 0.95
    assert cv["topics_f1"] >= TOPICS_F1_TARGET, cv["per_topic"]
    weak = {code: m["precision"] for code, m in cv["per_topic"].items()
            if m["tp"] + m["fn"] >= 5 and m["precision"] < 0.75}
    assert not weak, f"topics below 0.75 precision (cross-validated): {weak}"


def test_dev_en_resubstitution_is_reported_beside_cv(dev_en: dict) -> None:
    assert dev_en["cv"]["folds"] == 5
    assert set(dev_en["per_topic"]) == set(dev_en["cv"]["per_topic"])
    assert dev_en["topics_f1"] >= dev_en["cv"]["topics_f1"] - 0.02  # fitting never looks worse than held-out


def test_the_shipped_model_is_the_one_measured(dev_en: dict) -> None:
    """The committed topic-model.yaml (resubstitution) meets the same bars as its cross-validated twin."""
    assert dev_en["topics_f1"] >= TOPICS_F1_TARGET
    assert dev_en["lowest_topic_precision"] >= 0.75, dev_en["per_topic"]


def test_dev_ru_topics_cross_validated(shared_data: Path, taxonomy: Taxonomy) -> None:
    """Russian topic cues: the issue's targets, cross-validated: micro-F1 0.78, and 0.65 precision for
    every topic with at least five labeled articles."""
    path = shared_data / "tagging" / "dev-ru.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    cv = evaluate(records, taxonomy, cv=5)["languages"]["ru"]["cv"]
    assert cv["topics_f1"] >= 0.78, cv["per_topic"]
    assert cv["lowest_topic_precision"] >= 0.65, cv["per_topic"]
