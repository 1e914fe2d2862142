"""Topic tags of one post: cue hits -> salience features -> the fitted model's probability -> tags.

Pure: the hits come from the one phrase scan of `tag_post`; the model and rules come from the taxonomy.
`topic_candidates` is also what fitting and cross-validation use, so they see exactly the tagger's features.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.tagging.records import FIELD_TEXT, KIND_TOPIC, MAX_EVIDENCE, Evidence, Tag
from aggregator.tagging.salience import MIN_SCORE, Cue, TopicModel, features, layout
from aggregator.tagging.taxonomy import Compiled
from aggregator.tagging.topicrules import Hit, group_hits, near_bonus, score_rule

# Rule score (over the threshold) that the cues other than actors must reach by themselves: who acts (a
# foreign ministry, an army, the Taliban) is not what happens, and a sentence about a topic says what happens.
ACTIVITY_MIN = 0.5
TOPIC_PRIOR = 0.5  # the source's configured topic focus, added only to a topic the text already scores


@dataclass(frozen=True, slots=True)
class Candidate:
    """A topic whose rule score reaches MIN_SCORE, its salience features and its evidence."""

    code: str
    score: float  # the rule score relative to the topic's threshold (1.0 = the old "just enough")
    features: dict[str, float]
    evidence: tuple[Evidence, ...]


def topic_candidates(hits: Sequence[Hit], texts: Mapping[str, str], compiled: Compiled,
                     default_topics: Iterable[str] = ()) -> list[Candidate]:
    groups = group_hits(hits)
    contexts = {code: score_rule(groups[f"context:{code}"]) / threshold
                for code, threshold in compiled.context_thresholds.items() if f"context:{code}" in groups}
    vetoes = {code for code, ratio in contexts.items() if ratio >= 1.0}
    context = max(contexts.values(), default=0.0)
    defaults = frozenset(default_topics)
    scored = []
    for code, group in groups.items():
        rule = compiled.topic_rules.get(code)
        if rule is None or vetoes.intersection(rule.not_in):
            continue
        score = score_rule(group) + near_bonus(rule, group, texts)
        if score <= 0 or (any(h.term.actor for h in group)
                          and score_rule(h for h in group if not h.term.actor) < ACTIVITY_MIN * rule.threshold):
            continue
        if code in defaults:
            score += TOPIC_PRIOR
        scored.append((code, rule.threshold, group, score))
    total = sum(s / t for _, t, _, s in scored)
    scored = [c for c in scored if c[3] / c[1] >= MIN_SCORE]  # below it no topic is tagged: skip the work
    if not scored:
        return []
    text = texts.get(FIELD_TEXT, "")
    lay = layout(text)
    out = []
    for code, threshold, group, score in scored:
        cues = [Cue(h.field, h.start, h.term.phrase, h.term.weight, h.term.actor) for h in group
                if h.term.weight >= 0.01]
        x = features(cues, threshold, lay, total, score / threshold, context)
        evidence = tuple(Evidence(h.field, h.start, h.end, texts[h.field][h.start : h.end], h.term.phrase,
                                  h.term.weight) for h in group if h.term.weight >= 0.01)[:MAX_EVIDENCE]
        out.append(Candidate(code, score / threshold, x, evidence))
    return out


def decide(candidates: Iterable[Candidate], model: TopicModel | None) -> list[Tag]:
    """Tags of the candidates the model accepts (without a model: the rule threshold); score = probability."""
    tags = []
    for c in candidates:
        if model is None:
            if c.score >= 1.0:
                tags.append(Tag(KIND_TOPIC, c.code, None, round(c.score, 3), c.evidence))
            continue
        if c.score < model.min_score:
            continue
        p = model.probability(c.code, c.features)
        if p >= model.cutoff:
            tags.append(Tag(KIND_TOPIC, c.code, None, round(p, 3), c.evidence))
    tags.sort(key=lambda t: (-t.score, t.code))
    return tags
