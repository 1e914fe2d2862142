"""tag_post: a pure function from a post and the taxonomy to country and topic tags with evidence.

The work per post is one regex scan per field (country aliases and topic phrases share one compiled trie)
over the text with clutter blanked out, then small dictionary work on the few dozen matches. No I/O, no
state: the same post and taxonomy always give the same tags, which is what lets `retag` recompute stored
tags after a taxonomy change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from aggregator.tagging.countries import country_tags, place_tags
from aggregator.tagging.matcher import Match, prepare
from aggregator.tagging.records import (
    FIELD_LABEL,
    FIELD_TEXT,
    FIELD_TITLE,
    Tag,
    TagInput,
    label_field_text,
)
from aggregator.tagging.taxonomy import Compiled, Taxonomy
from aggregator.tagging.textprep import blank_clutter, find_datelines
from aggregator.tagging.topicrules import Hit, Term
from aggregator.tagging.topicscore import Candidate, decide, topic_candidates


def _topic_hits(matches: Mapping[str, Sequence[Match]]) -> list[Hit]:
    return [Hit(p, field, m.start, m.end) for field, field_matches in matches.items()
            for m in field_matches for p in m.payloads if isinstance(p, Term)]


def topic_tags(hits: Sequence[Hit], texts: Mapping[str, str], compiled: Compiled,
               default_topics: Iterable[str] = ()) -> list[Tag]:
    """Topics the salience model accepts; Tag.score is its probability (see tagging.salience)."""
    return decide(topic_candidates(hits, texts, compiled, default_topics), compiled.topic_model)


def analyse(post: TagInput, taxonomy: Taxonomy) -> tuple[list[Tag], list[Candidate]]:
    """Country tags and the topic candidates (before the model decides): what fitting and evaluation need."""
    countries, _places, candidates = _analyse(post, taxonomy)
    return countries, candidates


def _analyse(post: TagInput, taxonomy: Taxonomy) -> tuple[list[Tag], list[Tag], list[Candidate]]:
    compiled = taxonomy.compiled
    texts = {FIELD_TITLE: post.title, FIELD_TEXT: post.text, FIELD_LABEL: label_field_text(post.labels)}
    lowered = {f: prepare(s) for f, s in texts.items() if s}
    prepared = dict(texts)
    if FIELD_TEXT in lowered:
        prepared[FIELD_TEXT], lowered[FIELD_TEXT] = blank_clutter(post.text, lowered[FIELD_TEXT], compiled.clutter)
    matches = {f: compiled.index.scan(prepared[f], low) for f, low in lowered.items()}
    countries = country_tags(matches, texts, find_datelines(prepared[FIELD_TEXT]),
                             compiled.disambiguation, post.default_countries)
    places = place_tags(matches, texts)
    return countries, places, topic_candidates(_topic_hits(matches), texts, compiled, post.default_topics)


def tag_post(post: TagInput, taxonomy: Taxonomy) -> list[Tag]:
    """Country tags (score descending), then place tags, then topic tags (probability descending), each
    with its evidence."""
    countries, places, candidates = _analyse(post, taxonomy)
    return countries + places + decide(candidates, taxonomy.compiled.topic_model)
