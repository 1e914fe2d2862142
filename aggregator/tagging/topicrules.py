"""Security topics as data (defaults/taxonomy/topics.yaml), compiled into one phrase layer and scored.

In the manner of Europe Media Monitor category definitions: each topic is a set of weighted phrases with a
minimum score; AND is a `near` rule (all of its phrases within a window of words), NOT is a negative weight
or a `not_in` context (sports, consumer tech) whose own score vetoes the topic. Contexts are scored with
the same machinery as topics.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from aggregator.errors import ConfigError
from aggregator.tagging import russian
from aggregator.tagging.configfiles import mapping, number, read_yaml, strings, text, weighted_terms
from aggregator.tagging.matcher import Phrase, normalize

TITLE_COUNT = 2  # an occurrence in the title (or a source label) counts as this many in the text
MAX_COUNTED = 5  # occurrences of one phrase beyond this add nothing
REPEAT_GAIN = 0.5  # each further occurrence adds this fraction of the phrase's weight
TERM_LAYER = 1  # topic phrases do not compete with country aliases for the same words (matcher layers)


@dataclass(frozen=True, slots=True)
class Term:
    """A phrase of a topic (or of a context)."""

    rule: str  # the topic or context code
    phrase: str
    weight: float
    actor: bool = False  # names who acts (a ministry, an army, the Taliban), not what happens (topics.yaml `actors`)


@dataclass(frozen=True, slots=True)
class Near:
    """AND: every phrase in `phrases` within `within` words of each other adds `weight` once."""

    phrases: tuple[str, ...]
    within: int
    weight: float


@dataclass(frozen=True, slots=True)
class TopicRule:
    code: str
    name: str
    description: str
    threshold: float
    not_in: tuple[str, ...]
    near: tuple[Near, ...]


class Hit(NamedTuple):
    """One occurrence of a term: which field and where."""

    term: Term
    field: str
    start: int
    end: int


def _case(phrase: str) -> str:
    letters = "".join(ch for ch in phrase if ch.isalpha())
    return "exact" if len(letters) >= 2 and letters.isupper() else "ci"


def _near(value: object, where: str) -> tuple[Near, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of near rules")
    rules = []
    for i, item in enumerate(value):
        w = f"{where}[{i}]"
        item = mapping(item, w)
        phrases = tuple(strings(item.get("all"), f"{w}: all"))
        if len(phrases) < 2:
            raise ConfigError(f"{w}: `all` needs at least two phrases")
        within = int(number(item.get("within"), f"{w}: within", positive=True))
        rules.append(Near(phrases, within, number(item.get("weight"), f"{w}: weight", positive=True)))
    return tuple(rules)


def _russian_terms(code: str, terms: Mapping[str, float], forms: russian.FormCache, where: str,
                   actors: Container[str] = ()) -> list[Phrase]:
    """Russian cues are base forms; each of their generated forms is a phrase of the cue (one Term, so
    the forms of one cue count as one phrase). A form two cues share belongs to the first."""
    out: list[Phrase] = []
    seen: set[str] = set()
    for entry, w in terms.items():
        if "*" in entry:
            raise ConfigError(f"{where}: {entry!r}: write the base form (its forms are generated), not a stem")
        term = Term(code, entry.rstrip(russian.LITERAL).strip(), w, entry in actors)
        for form in forms.forms([entry], cue=True):
            key = normalize(form)
            if key not in seen:
                seen.add(key)
                out.append(Phrase(form, _case(form), term, TERM_LAYER))
    return out


def build_topics(folder: Path, forms: russian.FormCache | None = None,
                 ) -> tuple[dict[str, TopicRule], dict[str, float], list[Phrase]]:
    """Topic rules, context thresholds, and the phrase layer holding every topic and context phrase.

    Russian cues (`terms_ru`) are base forms whose inflected forms come from `forms` (default: the
    taxonomy's generated ru/forms.json), as the Russian gazetteer's do."""
    forms = forms or russian.FormCache.load(folder)
    data = read_yaml(folder, "topics.yaml")
    phrases: list[Phrase] = []
    contexts: dict[str, float] = {}
    for code, entry in mapping(data.get("contexts"), "topics.yaml: contexts").items():
        where = f"topics.yaml: contexts: {code}"
        entry = mapping(entry, where)
        contexts[code] = number(entry.get("threshold"), f"{where}: threshold", positive=True)
        for phrase, w in weighted_terms(entry.get("terms"), f"{where}: terms").items():
            phrases.append(Phrase(phrase, _case(phrase), Term(f"context:{code}", phrase, w), TERM_LAYER))
        if entry.get("terms_ru") is not None:
            phrases += _russian_terms(f"context:{code}", weighted_terms(entry.get("terms_ru"), f"{where}: terms_ru"),
                                      forms, f"{where}: terms_ru")
    topics = {}
    for code, entry in mapping(data.get("topics"), "topics.yaml: topics").items():
        where = f"topics.yaml: topics: {code}"
        entry = mapping(entry, where)
        not_in = tuple(strings(entry.get("not_in"), f"{where}: not_in"))
        unknown = [c for c in not_in if c not in contexts]
        if unknown:
            raise ConfigError(f"{where}: not_in names unknown contexts {unknown}")
        near = _near(entry.get("near"), f"{where}: near")
        topics[code] = TopicRule(code, text(entry.get("name"), f"{where}: name"),
                                 text(entry.get("description"), f"{where}: description"),
                                 number(entry.get("threshold"), f"{where}: threshold", positive=True),
                                 not_in, near)
        terms = weighted_terms(entry.get("terms"), f"{where}: terms")
        for phrase in {p for n in near for p in n.phrases} - set(terms):
            terms[phrase] = 1e-9  # matched only to feed the near rule
        terms_ru = weighted_terms(entry.get("terms_ru"), f"{where}: terms_ru") if "terms_ru" in entry else {}
        actors = set(strings(entry.get("actors"), f"{where}: actors")) if "actors" in entry else set()
        unknown = sorted(actors - set(terms) - set(terms_ru))
        if unknown:
            raise ConfigError(f"{where}: actors {unknown} are not phrases of terms or terms_ru")
        for phrase, w in terms.items():
            phrases.append(Phrase(phrase, _case(phrase), Term(code, phrase, w, phrase in actors), TERM_LAYER))
        if terms_ru:
            phrases += _russian_terms(code, terms_ru, forms, f"{where}: terms_ru", actors)
    if not topics:
        raise ConfigError("topics.yaml: no topics defined")
    return topics, contexts, phrases


def phrase_score(weight: float, text_count: int, title_count: int) -> float:
    """Diminishing returns for repeats; a title occurrence weighs like TITLE_COUNT text occurrences."""
    if weight < 0:
        return weight
    n = min(text_count + TITLE_COUNT * title_count, MAX_COUNTED)
    return weight * (1 + REPEAT_GAIN * (n - 1)) if n else 0.0


def group_hits(hits: Iterable[Hit]) -> dict[str, list[Hit]]:
    """Hits per rule code (topics and `context:` codes), in text order."""
    groups: dict[str, list[Hit]] = {}
    for h in hits:
        groups.setdefault(h.term.rule, []).append(h)
    return groups


def score_rule(hits: Iterable[Hit]) -> float:
    """The score of one rule from its hits: phrase scores summed (see `phrase_score`)."""
    counts: dict[str, list[int]] = {}
    weights: dict[str, float] = {}
    for h in hits:
        c = counts.get(h.term.phrase)
        if c is None:
            c = counts[h.term.phrase] = [0, 0]
            weights[h.term.phrase] = h.term.weight
        c[0 if h.field == "text" else 1] += 1
    return sum(phrase_score(weights[p], n_text, n_title) for p, (n_text, n_title) in counts.items())


def score_hits(hits: Iterable[Hit]) -> dict[str, float]:
    """Score per rule code (topics and `context:` codes) from the hits of one post."""
    return {rule: score_rule(group) for rule, group in group_hits(hits).items()}


def near_bonus(rule: TopicRule, hits: Iterable[Hit], fields: Mapping[str, str]) -> float:
    """Sum of the weights of `near` rules satisfied within one field (`fields`: field name -> its text).

    `hits` may be all hits of the post or only this rule's.
    """
    if not rule.near:
        return 0.0
    positions: dict[tuple[str, str], list[int]] = {}
    counted: dict[str, tuple[int, int]] = {}  # field -> (offset, words before it): hits come in text order
    for h in hits:
        if h.term.rule == rule.code:
            offset, words = counted.get(h.field, (0, 0))
            if h.start < offset:
                offset, words = 0, 0
            words += fields[h.field].count(" ", offset, h.start)
            counted[h.field] = (h.start, words)
            positions.setdefault((h.field, h.term.phrase), []).append(words)
    bonus = 0.0
    for near in rule.near:
        for field in ("title", "text", "label"):
            lists = [positions.get((field, p), []) for p in near.phrases]
            if all(lists) and _within(lists, near.within):
                bonus += near.weight
                break
    return bonus


def _within(lists: Sequence[Sequence[int]], window: int) -> bool:
    anchors = lists[0]
    return any(all(any(abs(a - p) <= window for p in other) for other in lists[1:]) for a in anchors)


def topic_names(topics: Mapping[str, TopicRule]) -> dict[str, str]:
    return {code: rule.name for code, rule in topics.items()}
