"""How well clustering recovers labeled events: pairwise and B-cubed scores, cross-validated threshold.

The articles are clustered in date order as ingest would see them (each tagged by the real tagger).
Pairwise precision/recall count pairs of articles put together; B-cubed averages, per article, the
share of its cluster that is its event (precision) and of its event that is its cluster (recall).
Cross-language recall is the pairwise recall over same-event pairs in two languages.

The one fitted number is the decision threshold. Its resubstitution score (threshold chosen on all
events) is optimistic, so the report also gives grouped k-fold figures: the threshold is chosen on
the other folds' events and applied to the held-out fold's, fold by fold, and the held-out clusters
are scored together. Weights are set by reasoning, not searched.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aggregator.stories.cluster import Params, StoryIndex
from aggregator.stories.features import PostFeatures, extract
from aggregator.tagging.records import TagInput
from aggregator.tagging.tagger import tag_post
from aggregator.tagging.taxonomy import Taxonomy

THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(15))  # 0.30 … 1.00
FOLDS = 5


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    event: str
    lang: str
    at: datetime
    features: PostFeatures


def load_articles(records: Sequence[Mapping[str, Any]], taxonomy: Taxonomy) -> list[Article]:
    """Tagged and featured articles in date order (undated ones last, as if seen now)."""
    articles = []
    for r in records:
        title, text = str(r.get("title") or ""), str(r.get("text") or "")
        tags = tag_post(TagInput(title=title, text=text), taxonomy)
        date = r.get("date")
        at = datetime.fromisoformat(date).replace(tzinfo=UTC) if date else datetime.max.replace(tzinfo=UTC)
        articles.append(Article(str(r["id"]), str(r["event"]), str(r.get("lang") or ""), at,
                                extract(title, text, tags)))
    articles.sort(key=lambda a: (a.at, a.id))
    return articles


def cluster(articles: Sequence[Article], params: Params) -> dict[str, int]:
    """Article id -> cluster number, running the clustering in order and following merges."""
    index = StoryIndex(params)
    story_of: dict[int, int] = {}
    for number, article in enumerate(articles):
        story, decision = index.add(number, article.features, article.at)
        story_of[number] = story
        for merged in decision.merge:
            for post, s in story_of.items():
                if s == merged:
                    story_of[post] = story
    return {articles[n].id: s for n, s in story_of.items()}


def _pairs(groups: Mapping[str, Any], ids: Sequence[str]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in itertools.combinations(sorted(ids), 2) if groups[a] == groups[b]}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def scores(articles: Sequence[Article], clusters: Mapping[str, int]) -> dict[str, float]:
    """Pairwise precision/recall/F1, B-cubed F1 and cross-language pair recall."""
    ids = [a.id for a in articles]
    event = {a.id: a.event for a in articles}
    lang = {a.id: a.lang for a in articles}
    truth, found = _pairs(event, ids), _pairs(clusters, ids)
    hits = truth & found
    precision = len(hits) / len(found) if found else 1.0
    recall = len(hits) / len(truth) if truth else 1.0
    cross = {pair for pair in truth if lang[pair[0]] != lang[pair[1]]}
    members: dict[Any, set[str]] = defaultdict(set)
    events: dict[str, set[str]] = defaultdict(set)
    for i in ids:
        members[clusters[i]].add(i)
        events[event[i]].add(i)
    b_p = sum(len(members[clusters[i]] & events[event[i]]) / len(members[clusters[i]]) for i in ids) / len(ids)
    b_r = sum(len(members[clusters[i]] & events[event[i]]) / len(events[event[i]]) for i in ids) / len(ids)
    return {"pairwise_precision": round(precision, 3), "pairwise_recall": round(recall, 3),
            "pairwise_f1": round(_f1(precision, recall), 3), "bcubed_f1": round(_f1(b_p, b_r), 3),
            "cross_language_recall": round(len(cross & found) / len(cross), 3) if cross else 1.0,
            "cross_language_pairs": len(cross)}


def mixed_events(articles: Sequence[Article]) -> set[str]:
    langs: dict[str, set[str]] = defaultdict(set)
    for a in articles:
        langs[a.event].add(a.lang)
    return {e for e, ls in langs.items() if len(ls) > 1}


def wrong_merges(articles: Sequence[Article], clusters: Mapping[str, int]) -> list[tuple[str, str]]:
    """Pairs of different events that share a cluster."""
    events: dict[int, set[str]] = defaultdict(set)
    for a in articles:
        events[clusters[a.id]].add(a.event)
    return sorted({pair for evs in events.values() for pair in itertools.combinations(sorted(evs), 2)})


def _best_threshold(articles: Sequence[Article], params: Params) -> float:
    def quality(t: float) -> tuple[float, float]:
        s = scores(articles, cluster(articles, replace(params, threshold=t)))
        return s["bcubed_f1"] + s["pairwise_f1"], -abs(t - params.threshold)
    return max(THRESHOLDS, key=quality)


def cross_validate(articles: Sequence[Article], params: Params, folds: int = FOLDS) -> dict[str, Any]:
    """Grouped k-fold by event: the threshold is fitted without the held-out events."""
    events = sorted({a.event for a in articles})
    fold_of = {e: i % folds for i, e in enumerate(events)}
    clusters: dict[str, Any] = {}
    chosen = []
    for k in range(folds):
        train = [a for a in articles if fold_of[a.event] != k]
        test = [a for a in articles if fold_of[a.event] == k]
        threshold = _best_threshold(train, params)
        chosen.append(threshold)
        clusters.update({i: (k, c) for i, c in cluster(test, replace(params, threshold=threshold)).items()})
    result: dict[str, Any] = scores(articles, clusters)
    result["thresholds"] = chosen
    return result


def evaluate(records: Sequence[Mapping[str, Any]], taxonomy: Taxonomy, params: Params | None = None,
             *, folds: int = FOLDS) -> dict[str, Any]:
    """The whole report as one JSON-ready dict."""
    params = params or Params()
    articles = load_articles(records, taxonomy)
    clusters = cluster(articles, params)
    mixed = mixed_events(articles)
    mixed_articles = [a for a in articles if a.event in mixed]
    return {
        "articles": len(articles),
        "events": len({a.event for a in articles}),
        "threshold": params.threshold,
        "window_hours": params.window.total_seconds() / 3600,
        "overall": scores(articles, clusters),
        "mixed_language_events": scores(mixed_articles, clusters),
        "wrong_merges": [list(p) for p in wrong_merges(articles, clusters)],
        "cross_validated": cross_validate(articles, params, folds) if folds > 1 else None,
        "best_threshold_on_all": _best_threshold(articles, params),
        "clusters": sorted(sorted(ids) for ids in _groups(clusters).values()),
    }


def _groups(clusters: Mapping[str, Any]) -> dict[Any, list[str]]:
    groups: dict[Any, list[str]] = defaultdict(list)
    for i, c in clusters.items():
        groups[c].append(i)
    return groups


def format_report(result: Mapping[str, Any]) -> str:
    """The report for people: the scores, then what merged that should not have."""
    lines = [f"{result['articles']} articles, {result['events']} events; threshold {result['threshold']}, "
             f"window {result['window_hours']:g} h"]
    rows = [("overall", result["overall"]), ("mixed-language events", result["mixed_language_events"])]
    if result.get("cross_validated"):
        rows.append((f"cross-validated ({FOLDS}-fold by event)", result["cross_validated"]))
    lines.append(f"{'':38} {'P':>6} {'R':>6} {'F1':>6} {'B3 F1':>6} {'x-lang R':>8}")
    for name, s in rows:
        lines.append(f"{name:38} {s['pairwise_precision']:6.3f} {s['pairwise_recall']:6.3f} "
                     f"{s['pairwise_f1']:6.3f} {s['bcubed_f1']:6.3f} {s['cross_language_recall']:8.3f}")
    if result.get("cross_validated"):
        lines.append(f"thresholds chosen per fold: {result['cross_validated']['thresholds']}; "
                     f"on all events: {result['best_threshold_on_all']}")
    merges = result["wrong_merges"]
    lines.append("events merged together: " + (", ".join("+".join(p) for p in merges) if merges else "none"))
    return "\n".join(lines)
