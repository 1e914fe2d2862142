"""From gazetteer matches to country tags: the calls a careful human reader makes, then scores and roles.

Each rule here is a judgement the labeling guide asks for and a phrase list cannot make on its own:
- a language is not its country ("Russian-language media", "speaks Tajik,");
- a currency is not its country ("US$8 billion");
- a name next to another name is a person ("Michael Jordan"), and so is every bare use in that document
  unless the country's own context shows up;
- an ambiguous name takes the sense its document supports (Georgia with Atlanta is the US state);
- a mixed-case dateline of a writer's home town counts only if the story is about that place anyway.
Scores favour the title and the lead, where a story says what it is about; primaries are the top
country and any other within PRIMARY_RATIO of it (at most MAX_PRIMARY).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from aggregator.tagging.gazetteer import CountryAlias, Cue, Disambiguation, PlaceAlias, RegionAlias
from aggregator.tagging.matcher import Match, normalize
from aggregator.tagging.records import (
    FIELD_TEXT,
    FIELD_TITLE,
    KIND_COUNTRY,
    KIND_PLACE,
    MAX_EVIDENCE,
    ROLE_MENTIONED,
    ROLE_PRIMARY,
    Evidence,
    Tag,
)
from aggregator.tagging.textprep import Dateline

FIELD_FACTOR = {FIELD_TITLE: 3.0, FIELD_TEXT: 1.0, "label": 1.5}
LEAD_CHARS = 500  # mentions in the first LEAD_CHARS characters of the text weigh LEAD_FACTOR more
LEAD_FACTOR = 1.25
PLACE_WEIGHT = 0.8  # one mention of a place below the country (as a country's `places` alias weighs)
REGION_WEIGHT = 0.6  # a country implied by a region name (Fergana Valley -> UZ, KG, TJ)
WIRE_DATELINE_BONUS = 2.0  # a wire dateline names where the story happens
SOURCE_PRIOR = 0.5  # the source's configured focus, added to a country the text already names
PRIMARY_MIN = 1.0
PRIMARY_RATIO = 0.5
MAX_PRIMARY = 3

_PREV_WORD = re.compile(r"([^\W_]+)([^\w]*)$")
_NEXT_WORD = re.compile(r"([^\w]*)([^\W_]+)")
_ENDS_PHRASE = re.compile(r"\s*(?:[.,;:!?)\]\"\u201d]|$|\s(?:and|or)\s)")


class Occurrence(NamedTuple):
    """A candidate country mention before the disambiguation rules run."""

    code: str
    field: str
    start: int
    end: int
    rule: str
    weight: float
    alias: CountryAlias | None


def _occurrences(matches: Mapping[str, Sequence[Match]], cues: dict[tuple[str, str], int]) -> list[Occurrence]:
    found = []
    for field, field_matches in matches.items():
        for m in field_matches:
            for p in m.payloads:
                if isinstance(p, CountryAlias):
                    found.append(Occurrence(p.code, field, m.start, m.end, p.rule, p.weight, p))
                elif isinstance(p, RegionAlias):
                    found.extend(Occurrence(c, field, m.start, m.end, f"region:{p.region}", REGION_WEIGHT, None)
                                 for c in p.implies)
                elif isinstance(p, Cue):
                    cues[(p.group, p.sense)] = cues.get((p.group, p.sense), 0) + 1
    return found


def _is_language_use(occ: Occurrence, text: str, dis: Disambiguation, prev_language_end: int) -> bool:
    after = _NEXT_WORD.match(text, occ.end)
    if after and after.group(1) in ("-", " ") and after.group(2).lower() in dis.language_after:
        return True
    if not _ENDS_PHRASE.match(text, occ.end):
        return False
    before = _PREV_WORD.search(text, max(0, occ.start - 40), occ.start)
    if not before:
        return False
    word = before.group(1).lower()
    if word in dis.language_before:
        return True
    return word in ("and", "or") and 0 <= occ.start - prev_language_end <= 8


def _drop_language_and_currency(occs: list[Occurrence], texts: Mapping[str, str],
                                dis: Disambiguation) -> list[Occurrence]:
    kept, last_language_end = [], -100
    for occ in occs:
        text = texts[occ.field]
        if occ.alias is not None and occ.alias.language and _is_language_use(occ, text, dis, last_language_end):
            last_language_end = occ.end
            continue
        if occ.rule == "name" and (text.startswith("$", occ.end) or text.startswith(" $", occ.end)):
            continue
        kept.append(occ)
    return kept


def _looks_like_person(occ: Occurrence, text: str, dis: Disambiguation, starts: set[int], ends: set[int]) -> bool:
    before = _PREV_WORD.search(text, max(0, occ.start - 40), occ.start)
    if before and before.group(2) == " " and before.end(1) not in ends:
        word = before.group(1)
        if word[:1].isupper() and word not in dis.name_neighbours and not word.endswith(("ing", "ed")):
            return True
    after = _NEXT_WORD.match(text, occ.end)
    if after and after.group(1) == " " and after.start(2) not in starts:
        word = after.group(2)
        return word[:1].isupper() and not word.isupper() and word not in dis.name_neighbours
    return False


def _resolve_names(occs: list[Occurrence], texts: Mapping[str, str], cues: Mapping[tuple[str, str], int],
                   dis: Disambiguation) -> list[Occurrence]:
    """Person names and ambiguous names, decided once per document."""
    if not any(o.alias is not None and (o.alias.person_name or o.alias.sense_group) for o in occs):
        return occs
    plain = {o.code for o in occs if o.alias is None or (o.alias.sense_group is None and not o.alias.person_name)}
    text_occs = [o for o in occs if o.field == FIELD_TEXT]
    starts, ends = {o.start for o in text_occs}, {o.end for o in text_occs}
    persons = {(o.field, o.start): normalize(texts[o.field][o.start : o.end]) for o in text_occs
               if o.alias is not None and o.alias.person_name
               and _looks_like_person(o, texts[o.field], dis, starts, ends)}
    person_aliases = set(persons.values())
    kept = []
    for occ in occs:
        a = occ.alias
        if a is not None and a.person_name:
            surface = normalize(texts[occ.field][occ.start : occ.end])
            if (occ.field, occ.start) in persons or (surface in person_aliases and occ.code not in plain):
                continue
        if a is not None and a.sense_group is not None:
            sense = _sense(a.sense_group, occ.code, plain, cues, dis)
            if sense == "none":
                continue
            if sense != occ.code:
                occ = Occurrence(sense, occ.field, occ.start, occ.end, f"sense:{a.sense_group}", occ.weight, None)
        kept.append(occ)
    return kept


def _sense(group: str, code: str, plain: set[str], cues: Mapping[tuple[str, str], int], dis: Disambiguation) -> str:
    default = dis.defaults.get(group, code)
    scores = {default: cues.get((group, default), 0) + (1 if default in plain else 0)}
    for (g, sense), n in cues.items():
        if g == group and sense != default:
            scores[sense] = n
    best = max(scores.values())
    return default if scores[default] >= best else max(scores, key=lambda s: scores[s])


def _apply_datelines(occs: list[Occurrence], datelines: Sequence[Dateline]) -> list[Occurrence]:
    """Drop soft-dateline mentions not backed elsewhere; give wire datelines their bonus."""
    if not datelines:
        return occs

    def line_of(o: Occurrence) -> Dateline | None:
        if o.field != FIELD_TEXT:
            return None
        return next((d for d in datelines if d.start <= o.start < d.end), None)

    located = [(o, line_of(o)) for o in occs]
    backed = {o.code for o, d in located if d is None}
    kept = []
    for o, d in located:
        if d is None:
            kept.append(o)
        elif d.wire:
            kept.append(Occurrence(o.code, o.field, o.start, o.end, "dateline", o.weight + WIRE_DATELINE_BONUS,
                                   o.alias))
        elif o.code in backed:
            kept.append(o)
    return kept


def _evidence(occ: Occurrence, texts: Mapping[str, str]) -> Evidence:
    factor = FIELD_FACTOR.get(occ.field, 1.0)
    if occ.field == FIELD_TEXT and occ.start < LEAD_CHARS:
        factor *= LEAD_FACTOR
    return Evidence(occ.field, occ.start, occ.end, texts[occ.field][occ.start : occ.end], occ.rule,
                    round(occ.weight * factor, 3))


def country_tags(matches: Mapping[str, Sequence[Match]], texts: Mapping[str, str], datelines: Sequence[Dateline],
                 dis: Disambiguation, default_countries: Iterable[str] = ()) -> list[Tag]:
    """Country tags, highest score first; `texts` maps each field to the string the offsets index."""
    cues: dict[tuple[str, str], int] = {}
    occs = _occurrences(matches, cues)
    occs = _drop_language_and_currency(occs, texts, dis)
    occs = _resolve_names(occs, texts, cues, dis)
    occs = _apply_datelines(occs, datelines)
    evidence: dict[str, list[Evidence]] = {}
    scores: dict[str, float] = {}
    for occ in occs:
        e = _evidence(occ, texts)
        evidence.setdefault(occ.code, []).append(e)
        scores[occ.code] = scores.get(occ.code, 0.0) + e.weight
    for code in set(default_countries) & set(scores):
        scores[code] += SOURCE_PRIOR
    ranked = sorted(scores, key=lambda c: (-scores[c], c))
    top = scores[ranked[0]] if ranked else 0.0
    primary = {c for c in ranked[:MAX_PRIMARY] if scores[c] >= max(PRIMARY_MIN, PRIMARY_RATIO * top)}
    return [Tag(KIND_COUNTRY, c, ROLE_PRIMARY if c in primary else ROLE_MENTIONED, round(scores[c], 3),
                tuple(evidence[c][:MAX_EVIDENCE])) for c in ranked]


def place_tags(matches: Mapping[str, Sequence[Match]], texts: Mapping[str, str]) -> list[Tag]:
    """Places below the country named in the post, highest score first, with their evidence."""
    evidence: dict[str, list[Evidence]] = {}
    for field, field_matches in matches.items():
        for m in field_matches:
            for p in m.payloads:
                if isinstance(p, PlaceAlias):
                    occ = Occurrence(p.place, field, m.start, m.end, "place", PLACE_WEIGHT, None)
                    evidence.setdefault(p.place, []).append(_evidence(occ, texts))
    scores = {code: sum(e.weight for e in found) for code, found in evidence.items()}
    return [Tag(KIND_PLACE, code, None, round(scores[code], 3), tuple(evidence[code][:MAX_EVIDENCE]))
            for code in sorted(scores, key=lambda c: (-scores[c], c))]
