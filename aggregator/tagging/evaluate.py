"""Measure the tagger against labeled articles (the format of shared/data/tagging/dev.jsonl).

Conventions follow the labels' README: countries mentioned and topics are scored by micro precision /
recall / F1 over all articles; the primary country is right when the tagger's single highest-scoring
primary is one of the labeled primaries (articles without labeled primaries are skipped). The worst
articles are listed with the evidence behind each wrong tag, because the point of an evaluation is to
show which taxonomy rule to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aggregator.tagging.records import KIND_COUNTRY, KIND_TOPIC, ROLE_PRIMARY, Tag, TagInput
from aggregator.tagging.tagger import tag_post
from aggregator.tagging.taxonomy import Taxonomy

WORST_LIMIT = 10


@dataclass(slots=True)
class _Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: set[str], gold: set[str]) -> None:
        self.tp += len(predicted & gold)
        self.fp += len(predicted - gold)
        self.fn += len(gold - predicted)

    def metrics(self) -> dict[str, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
                "tp": self.tp, "fp": self.fp, "fn": self.fn}


def _top_primary(tags: Sequence[Tag]) -> str | None:
    primaries = [t for t in tags if t.kind == KIND_COUNTRY and t.role == ROLE_PRIMARY]
    return max(primaries, key=lambda t: t.score).code if primaries else None


def _evidence_of(tags: Sequence[Tag], kind: str, codes: Iterable[str]) -> dict[str, list[str]]:
    wanted = set(codes)
    return {t.code: [f"{e.field}:{e.phrase!r} ({e.rule})" for e in t.evidence[:5]]
            for t in tags if t.kind == kind and t.code in wanted}


def _record_errors(record: Mapping[str, Any], tags: Sequence[Tag]) -> dict[str, Any]:
    countries = {t.code for t in tags if t.kind == KIND_COUNTRY}
    topics = {t.code for t in tags if t.kind == KIND_TOPIC}
    gold_c, gold_t = set(record.get("countries_mentioned", ())), set(record.get("topics", ()))
    gold_p = set(record.get("countries_primary", ()))
    top = _top_primary(tags)
    primary_wrong = bool(gold_p) and top not in gold_p
    wrong_c, wrong_t = sorted(countries - gold_c), sorted(topics - gold_t)
    return {
        "id": record.get("id"),
        "title": str(record.get("title", ""))[:90],
        "errors": len(wrong_c) + len(gold_c - countries) + len(wrong_t) + len(gold_t - topics) + primary_wrong,
        "countries_false": _evidence_of(tags, KIND_COUNTRY, wrong_c),
        "countries_missed": sorted(gold_c - countries),
        "primary": {"predicted": top, "expected": sorted(gold_p)} if primary_wrong else None,
        "topics_false": _evidence_of(tags, KIND_TOPIC, wrong_t),
        "topics_missed": sorted(gold_t - topics),
    }


def evaluate(records: Iterable[Mapping[str, Any]], taxonomy: Taxonomy) -> dict[str, Any]:
    """Metrics of the tagger on labeled records (id, title, text, countries_mentioned/primary, topics)."""
    countries, topics = _Counts(), _Counts()
    per_topic = {code: _Counts() for code in taxonomy.topics}
    primary_right = primary_total = articles = 0
    errors = []
    for record in records:
        articles += 1
        tags = tag_post(TagInput(title=str(record.get("title", "")), text=str(record.get("text", ""))), taxonomy)
        countries.add({t.code for t in tags if t.kind == KIND_COUNTRY}, set(record.get("countries_mentioned", ())))
        predicted_topics = {t.code for t in tags if t.kind == KIND_TOPIC}
        gold_topics = set(record.get("topics", ()))
        topics.add(predicted_topics, gold_topics)
        for code, counts in per_topic.items():
            counts.add(predicted_topics & {code}, gold_topics & {code})
        gold_primary = set(record.get("countries_primary", ()))
        if gold_primary:
            primary_total += 1
            primary_right += _top_primary(tags) in gold_primary
        errors.append(_record_errors(record, tags))
    c, t = countries.metrics(), topics.metrics()
    worst = sorted((e for e in errors if e["errors"]), key=lambda e: (-e["errors"], str(e["id"])))
    return {
        "articles": articles,
        "taxonomy_version": taxonomy.version,
        "countries_precision": c["precision"], "countries_recall": c["recall"], "countries_f1": c["f1"],
        "primary_accuracy": round(primary_right / primary_total, 4) if primary_total else 1.0,
        "primary_articles": primary_total,
        "topics_precision": t["precision"], "topics_recall": t["recall"], "topics_f1": t["f1"],
        "per_topic": {code: counts.metrics() for code, counts in per_topic.items()},
        "worst_errors": worst[:WORST_LIMIT],
    }


def format_report(result: Mapping[str, Any]) -> str:
    """A plain-text report for people tuning the taxonomy."""
    lines = [
        f"articles: {result['articles']}   taxonomy: {result['taxonomy_version']}",
        f"countries  P {result['countries_precision']:.3f}  R {result['countries_recall']:.3f}"
        f"  F1 {result['countries_f1']:.3f}",
        f"primary    accuracy {result['primary_accuracy']:.3f} ({result['primary_articles']} articles)",
        f"topics     P {result['topics_precision']:.3f}  R {result['topics_recall']:.3f}"
        f"  F1 {result['topics_f1']:.3f}",
        "",
        f"{'topic':22} {'P':>6} {'R':>6} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4}",
    ]
    for code, m in result["per_topic"].items():
        lines.append(f"{code:22} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f}"
                     f" {m['tp']:4d} {m['fp']:4d} {m['fn']:4d}")
    if result["worst_errors"]:
        lines += ["", "worst articles:"]
    for e in result["worst_errors"]:
        lines.append(f"- {e['id']}: {e['title']} ({e['errors']} errors)")
        for label, key in (("false countries", "countries_false"), ("false topics", "topics_false")):
            for code, ev in e[key].items():
                lines.append(f"    {label}: {code} <- {'; '.join(ev)}")
        for label, key in (("missed countries", "countries_missed"), ("missed topics", "topics_missed")):
            if e[key]:
                lines.append(f"    {label}: {', '.join(e[key])}")
        if e["primary"]:
            lines.append(f"    primary: got {e['primary']['predicted']}, expected one of {e['primary']['expected']}")
    return "\n".join(lines)
