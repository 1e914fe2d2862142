"""tag_post: a pure function from a post and the taxonomy to country and topic tags with evidence.

The work per post is one regex scan per field (country aliases and topic phrases share one compiled trie)
over the text with clutter blanked out, then small dictionary work on the few dozen matches. No I/O, no
state: the same post and taxonomy always give the same tags, which is what lets `retag` recompute stored
tags after a taxonomy change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from aggregator.tagging.countries import country_tags
from aggregator.tagging.matcher import Match, prepare
from aggregator.tagging.records import (
    FIELD_LABEL,
    FIELD_TEXT,
    FIELD_TITLE,
    KIND_TOPIC,
    MAX_EVIDENCE,
    Evidence,
    Tag,
    TagInput,
    label_field_text,
)
from aggregator.tagging.taxonomy import Compiled, Taxonomy
from aggregator.tagging.textprep import blank_clutter, find_datelines
from aggregator.tagging.topicrules import Hit, Term, group_hits, near_bonus, score_rule

TOPIC_PRIOR = 0.5  # the source's configured topic focus, added only to a topic the text already scores


def _topic_hits(matches: Mapping[str, Sequence[Match]]) -> list[Hit]:
    return [Hit(p, field, m.start, m.end) for field, field_matches in matches.items()
            for m in field_matches for p in m.payloads if isinstance(p, Term)]


def topic_tags(hits: Sequence[Hit], texts: Mapping[str, str], compiled: Compiled,
               default_topics: Iterable[str] = ()) -> list[Tag]:
    """Topics whose score reaches their threshold; Tag.score is score / threshold (1.0 = just enough)."""
    groups = group_hits(hits)
    vetoes = {code for code, threshold in compiled.context_thresholds.items()
              if f"context:{code}" in groups and score_rule(groups[f"context:{code}"]) >= threshold}
    tags = []
    for code, group in groups.items():
        rule = compiled.topic_rules.get(code)
        if rule is None or vetoes.intersection(rule.not_in):
            continue
        score = score_rule(group) + near_bonus(rule, group, texts)
        if score > 0 and code in default_topics:
            score += TOPIC_PRIOR
        if score < rule.threshold:
            continue
        evidence = tuple(Evidence(h.field, h.start, h.end, texts[h.field][h.start : h.end], h.term.phrase,
                                  h.term.weight) for h in group if h.term.weight >= 0.01)[:MAX_EVIDENCE]
        tags.append(Tag(KIND_TOPIC, code, None, round(score / rule.threshold, 3), evidence))
    tags.sort(key=lambda t: (-t.score, t.code))
    return tags


def tag_post(post: TagInput, taxonomy: Taxonomy) -> list[Tag]:
    """Country tags (score descending), then topic tags (score descending), each with its evidence."""
    compiled = taxonomy.compiled
    texts = {FIELD_TITLE: post.title, FIELD_TEXT: post.text, FIELD_LABEL: label_field_text(post.labels)}
    lowered = {f: prepare(s) for f, s in texts.items() if s}
    prepared = dict(texts)
    if FIELD_TEXT in lowered:
        prepared[FIELD_TEXT], lowered[FIELD_TEXT] = blank_clutter(post.text, lowered[FIELD_TEXT], compiled.clutter)
    matches = {f: compiled.index.scan(prepared[f], low) for f, low in lowered.items()}
    countries = country_tags(matches, texts, find_datelines(prepared[FIELD_TEXT]),
                             compiled.disambiguation, post.default_countries)
    topics = topic_tags(_topic_hits(matches), texts, compiled, frozenset(post.default_topics))
    return countries + topics
