"""Measure the tagger against labeled articles (the format of shared/data/tagging/dev.jsonl).

Conventions follow the labels' README: countries mentioned and topics are scored by micro precision /
recall / F1 over all articles; the primary country is right when the tagger's single highest-scoring
primary is one of the labeled primaries (articles without labeled primaries are skipped). The worst
articles are listed with the evidence behind each wrong tag, because the point of an evaluation is to
show which taxonomy rule to fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aggregator.tagging.records import KIND_COUNTRY, KIND_TOPIC, ROLE_PRIMARY, Tag, TagInput
from aggregator.tagging.salience import MIN_SCORE, fit
from aggregator.tagging.tagger import analyse
from aggregator.tagging.taxonomy import Taxonomy
from aggregator.tagging.topicscore import Candidate, decide

WORST_LIMIT = 10
MIN_GOLD = 5  # topics with fewer labeled articles are too few to judge their precision


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


def _measure(records: Sequence[Mapping[str, Any]], analysed: Sequence[tuple[list[Tag], list[Candidate]]],
             model: Any, topic_codes: Iterable[str]) -> dict[str, Any]:
    countries, topics = _Counts(), _Counts()
    per_topic = {code: _Counts() for code in topic_codes}
    primary_right = primary_total = 0
    errors = []
    for record, (country_tags, candidates), m in zip(records, analysed, _models(model, len(records)), strict=True):
        tags = country_tags + decide(candidates, m)
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
        "articles": len(records),
        "countries_precision": c["precision"], "countries_recall": c["recall"], "countries_f1": c["f1"],
        "primary_accuracy": round(primary_right / primary_total, 4) if primary_total else 1.0,
        "primary_articles": primary_total,
        "topics_precision": t["precision"], "topics_recall": t["recall"], "topics_f1": t["f1"],
        "per_topic": {code: counts.metrics() for code, counts in per_topic.items()},
        "lowest_topic_precision": _lowest_precision(per_topic),
        "worst_errors": worst[:WORST_LIMIT],
    }


def _models(model: Any, n: int) -> Iterator[Any]:
    """One model for every record, or (cross-validation) a list with each record's held-out model."""
    return iter(model) if isinstance(model, list) else (model for _ in range(n))


def _lowest_precision(per_topic: Mapping[str, _Counts]) -> float:
    """The lowest precision among topics with at least MIN_GOLD labeled articles (the target's measure)."""
    values = [c.metrics()["precision"] for c in per_topic.values() if c.tp + c.fn >= MIN_GOLD]
    return min(values, default=1.0)


def training_rows(records: Sequence[Mapping[str, Any]], analysed: Sequence[tuple[list[Tag], list[Candidate]]],
                  ) -> list[tuple[str, dict[str, float], bool]]:
    """(topic, features, labeled?) for every topic candidate of every record: what the model is fitted on."""
    return [(c.code, c.features, c.code in set(r.get("topics", ())))
            for r, (_, cands) in zip(records, analysed, strict=True) for c in cands if c.score >= MIN_SCORE]


def _cv_models(records: Sequence[Mapping[str, Any]], analysed: Sequence[tuple[list[Tag], list[Candidate]]],
               topics: Sequence[str], k: int) -> list[Any]:
    """For each record, a model fitted on the folds that do not hold it (folds never split a story group)."""
    fold_of = assign_folds(records, k)
    models = {}
    for f in range(k):
        train = [i for i in range(len(records)) if fold_of[i] != f]
        models[f] = fit(training_rows([records[i] for i in train], [analysed[i] for i in train]), topics)
    return [models[fold_of[i]] for i in range(len(records))]


def evaluate(records: Iterable[Mapping[str, Any]], taxonomy: Taxonomy, *, cv: int = 0) -> dict[str, Any]:
    """Metrics of the tagger on labeled records (id, title, text, countries_mentioned/primary, topics).

    With `cv` = k > 1 the topic model is also refitted k times, each time without one fold, and every
    article is tagged by the model that did not see it: `result["cv"]` holds those honest figures beside
    the resubstitution ones. Records with a `lang` are also measured per language under `languages`.
    """
    records = list(records)
    analysed = [analyse(TagInput(title=str(r.get("title") or ""), text=str(r.get("text") or "")), taxonomy)
                for r in records]
    topics = list(taxonomy.topics)
    model = taxonomy.compiled.topic_model
    result = {"taxonomy_version": taxonomy.version, **_measure(records, analysed, model, topics)}
    cv_models = _cv_models(records, analysed, topics, cv) if cv > 1 and len(records) >= cv else None
    if cv_models is not None:
        result["cv"] = {"folds": cv, **_measure(records, analysed, cv_models, topics)}
        del result["cv"]["worst_errors"]
    langs = sorted({str(r.get("lang")) for r in records if r.get("lang")})
    if langs:
        result["languages"] = {}
        for lang in langs:
            idx = [i for i, r in enumerate(records) if r.get("lang") == lang]
            sub_r, sub_a = [records[i] for i in idx], [analysed[i] for i in idx]
            part = _measure(sub_r, sub_a, model, topics)
            del part["worst_errors"]
            if cv_models is not None:
                part["cv"] = _measure(sub_r, sub_a, [cv_models[i] for i in idx], topics)
                del part["cv"]["worst_errors"]
            result["languages"][lang] = part
    return result


_GROUP_WORDS = re.compile(r"[^\W\d_]{5,}")
GROUP_SIMILARITY = 0.15  # cosine of distinctive title+lead words above which two articles tell one story


def story_groups(records: Sequence[Mapping[str, Any]]) -> list[int]:
    """A group number per record: articles whose titles and leads share rare words are one story.

    The data has no event field, so near-duplicates and same-event articles are found by a tf-idf cosine of
    the words (5+ letters) of the title and the first 300 characters, joined transitively.
    """
    bags = [set(_GROUP_WORDS.findall((str(r.get("title") or "") + " " + str(r.get("text") or "")[:300]).lower()))
            for r in records]
    df: dict[str, int] = {}
    for bag in bags:
        for w in bag:
            df[w] = df.get(w, 0) + 1
    n = len(records)
    vecs = [{w: math.log(n / df[w]) for w in bag} for bag in bags]
    norms = [math.sqrt(sum(v * v for v in vec.values())) or 1.0 for vec in vecs]
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            dot = sum(v * vecs[j].get(w, 0.0) for w, v in vecs[i].items())
            if dot / (norms[i] * norms[j]) >= GROUP_SIMILARITY:
                parent[root(i)] = root(j)
    return [root(i) for i in range(n)]


def assign_folds(records: Sequence[Mapping[str, Any]], k: int) -> list[int]:
    """Fold per record: whole story groups, largest first, each to the currently smallest fold."""
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(story_groups(records)):
        groups.setdefault(g, []).append(i)
    sizes = [0] * k
    fold_of = [0] * len(records)
    for members in sorted(groups.values(), key=lambda m: (-len(m), m[0])):
        f = min(range(k), key=lambda x: (sizes[x], x))
        sizes[f] += len(members)
        for i in members:
            fold_of[i] = f
    return fold_of


def _summary(result: Mapping[str, Any], cv: Mapping[str, Any] | None) -> list[str]:
    def pair(key: str) -> str:
        return f"{result[key]:.3f}" + (f" (cv {cv[key]:.3f})" if cv else "")

    lines = [
        f"countries  P {pair('countries_precision')}  R {pair('countries_recall')}  F1 {pair('countries_f1')}",
        f"primary    accuracy {pair('primary_accuracy')} ({result['primary_articles']} articles)",
        f"topics     P {pair('topics_precision')}  R {pair('topics_recall')}  F1 {pair('topics_f1')}",
        f"lowest precision of a topic with >= {MIN_GOLD} gold: {pair('lowest_topic_precision')}",
        "",
        f"{'topic':22} {'P':>6} {'R':>6} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4}"
        + (f"   {'cv P':>6} {'cv R':>6} {'cv F1':>6}" if cv else ""),
    ]
    for code, m in result["per_topic"].items():
        line = (f"{code:22} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f}"
                f" {m['tp']:4d} {m['fp']:4d} {m['fn']:4d}")
        if cv:
            c = cv["per_topic"][code]
            line += f"   {c['precision']:6.3f} {c['recall']:6.3f} {c['f1']:6.3f}"
        lines.append(line)
    return lines


def format_report(result: Mapping[str, Any]) -> str:
    """A plain-text report for people tuning the taxonomy; `(cv …)` figures come from held-out folds."""
    cv = result.get("cv")
    lines = [f"articles: {result['articles']}   taxonomy: {result['taxonomy_version']}"
             + (f"   cross-validation: {cv['folds']} folds, figures in (cv ...)" if cv else ""),
             *_summary(result, cv)]
    for lang, part in result.get("languages", {}).items():
        if len(result["languages"]) > 1:
            lines += ["", f"language {lang}: {part['articles']} articles", *_summary(part, part.get("cv"))]
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
