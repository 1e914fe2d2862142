"""The country gazetteer: pycountry names plus config/taxonomy, compiled into one phrase layer.

The layer holds four kinds of phrases, all competing for the same words so that the longest wins:
country aliases, region aliases, blockers ("Washington Post", "Soviet Union": phrases that contain a
country alias but do not mention it) and context cues for ambiguous names ("Atlanta" for the US state of
Georgia). Regions never make country mentions on their own unless configured to (Fergana Valley).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pycountry

from aggregator.errors import ConfigError
from aggregator.tagging.configfiles import mapping, number, read_yaml, strings, text
from aggregator.tagging.matcher import Phrase, normalize

ALIAS_KINDS = ("names", "demonyms", "places", "leaders", "institutions")
RULE_NAMES = {"names": "name", "demonyms": "demonym", "places": "place", "leaders": "leader",
              "institutions": "institution"}


@dataclass(frozen=True, slots=True)
class CountryAlias:
    code: str
    rule: str
    weight: float
    sense_group: str | None
    person_name: bool
    language: bool


@dataclass(frozen=True, slots=True)
class RegionAlias:
    region: str
    implies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Blocker:
    phrase: str


@dataclass(frozen=True, slots=True)
class Cue:
    group: str
    sense: str


class Region(NamedTuple):
    """A region code's display name and the countries the API expands it to."""

    name: str
    countries: frozenset[str]


@dataclass(frozen=True, slots=True)
class Disambiguation:
    """Word lists the country resolver consults (see config/taxonomy/disambiguation.yaml)."""

    defaults: Mapping[str, str]
    name_neighbours: frozenset[str]
    language_after: frozenset[str]
    language_before: frozenset[str]
    domain_endings: tuple[str, ...]


def _pycountry_names() -> tuple[dict[str, str], dict[str, set[str]]]:
    """Display names and alias -> codes from pycountry ("Iran, Islamic Republic of" -> "Iran" too)."""
    display, aliases = {}, {}
    for c in pycountry.countries:
        forms = [getattr(c, a, None) for a in ("common_name", "name", "official_name")]
        display[c.alpha_2] = next(f for f in forms if f)
        for form in filter(None, forms):
            form = re.sub(r"\s*\([^)]*\)", "", form).strip()
            variants = [form]
            if ", " in form:
                head, tail = form.split(", ", 1)
                variants = [head] + ([f"{tail} {head}"] if re.search(r"\bof( the)?$", tail) else [])
            for v in variants:
                v = re.sub(r"^the ", "", v, flags=re.IGNORECASE)
                aliases.setdefault(v, set()).add(c.alpha_2)
    return display, aliases


def _case_mode(alias: str, kind: str, case_sensitive: frozenset[str]) -> str:
    letters = re.sub(r"[^\w]", "", alias)
    if (len(letters) >= 2 and letters.isupper()) or alias in case_sensitive:
        return "exact"
    return "ci" if kind == "names" else "cap"


class _Builder:
    def __init__(self, folder: Path):
        self.folder = folder
        self.dis = read_yaml(folder, "disambiguation.yaml")
        self.case_sensitive = frozenset(strings(self.dis.get("case_sensitive"), "disambiguation.yaml: case_sensitive"))
        self.person = {normalize(a) for a in strings(self.dis.get("person_names"), "disambiguation.yaml: person_names")}
        self.languages = {normalize(a) for a in strings(self.dis.get("languages"), "disambiguation.yaml: languages")}
        groups = mapping(self.dis.get("ambiguous"), "disambiguation.yaml: ambiguous")
        self.groups = {normalize(g): g for g in groups}
        self.phrases: list[Phrase] = []

    def alias(self, alias: str, code: str, kind: str, weight: float) -> None:
        key = normalize(alias)
        payload = CountryAlias(code, RULE_NAMES[kind], weight, self.groups.get(key), key in self.person,
                               key in self.languages)
        self.phrases.append(Phrase(alias, _case_mode(alias, kind, self.case_sensitive), payload))


def _country_sections(folder: Path, codes: set[str]) -> tuple[list[tuple[str, str, Mapping[str, Any]]], dict]:
    sections = []
    weights: dict[str, float] = {}
    for name in ("countries.yaml", "focus-countries.yaml"):
        data = read_yaml(folder, name)
        for kind, w in mapping(data.get("weights"), f"{name}: weights").items():
            if kind not in ALIAS_KINDS:
                raise ConfigError(f"{name}: weights: unknown alias kind {kind!r} (use {', '.join(ALIAS_KINDS)})")
            weights[kind] = number(w, f"{name}: weights: {kind}", positive=True)
        for code, entry in mapping(data.get("countries"), f"{name}: countries").items():
            if code not in codes:
                raise ConfigError(f"{name}: {code!r} is not an ISO 3166-1 alpha-2 code (nor declared in `extra`)")
            sections.append((name, code, mapping(entry, f"{name}: {code}")))
    missing = [k for k in ALIAS_KINDS if k not in weights]
    if missing:
        raise ConfigError(f"focus-countries.yaml: weights: missing {', '.join(missing)}")
    return sections, weights


def build_gazetteer(folder: Path) -> tuple[dict[str, str], dict[str, Region], list[Phrase], Disambiguation]:
    """Country display names, regions, the phrase layer, and the resolver's word lists."""
    display, derived = _pycountry_names()
    world = read_yaml(folder, "countries.yaml")
    for code, name in mapping(world.get("extra"), "countries.yaml: extra").items():
        display[code] = text(name, f"countries.yaml: extra: {code}")
    dropped = {normalize(d) for d in strings(world.get("drop"), "countries.yaml: drop")}
    sections, weights = _country_sections(folder, set(display))
    b = _Builder(folder)
    explicit: dict[str, dict[str, str]] = {}
    for name, code, entry in sections:
        for kind, aliases in entry.items():
            if kind not in ALIAS_KINDS:
                raise ConfigError(f"{name}: {code}: unknown key {kind!r} (use {', '.join(ALIAS_KINDS)})")
            for alias in strings(aliases, f"{name}: {code}: {kind}"):
                explicit.setdefault(normalize(alias), {})[code] = name
                b.alias(alias, code, kind, weights[kind])
    for key, owners in explicit.items():
        if len(owners) > 1:
            where = ", ".join(f"{code} in {name}" for code, name in sorted(owners.items()))
            raise ConfigError(f"alias {key!r} is claimed by several countries: {where}")
    for alias, codes in sorted(derived.items()):
        key = normalize(alias)
        if len(codes) == 1 and key not in explicit and key not in dropped:
            b.alias(alias, next(iter(codes)), "names", weights["names"])
    regions = _regions(folder, set(display), b.phrases)
    _blockers_and_cues(b)
    return display, regions, b.phrases, _disambiguation(b.dis)


def _regions(folder: Path, codes: set[str], phrases: list[Phrase]) -> dict[str, Region]:
    regions = {}
    for code, entry in mapping(read_yaml(folder, "regions.yaml").get("regions"), "regions.yaml: regions").items():
        where = f"regions.yaml: {code}"
        entry = mapping(entry, where)
        members = strings(entry.get("countries"), f"{where}: countries")
        unknown = sorted(set(members) - codes)
        if unknown or not members:
            raise ConfigError(f"{where}: countries must be known codes, got unknown {unknown or 'none at all'}")
        regions[code] = Region(text(entry.get("name"), f"{where}: name"), frozenset(members))
        implies = tuple(sorted(members)) if entry.get("implies_mentions") is True else ()
        for alias in strings(entry.get("aliases"), f"{where}: aliases"):
            phrases.append(Phrase(alias, "cap", RegionAlias(code, implies)))
    return regions


def _blockers_and_cues(b: _Builder) -> None:
    for phrase in strings(b.dis.get("blockers"), "disambiguation.yaml: blockers"):
        b.phrases.append(Phrase(phrase, "ci", Blocker(phrase)))
    for group, entry in mapping(b.dis.get("ambiguous"), "disambiguation.yaml: ambiguous").items():
        where = f"disambiguation.yaml: ambiguous: {group}"
        entry = mapping(entry, where)
        text(entry.get("default"), f"{where}: default")
        for sense, cues in mapping(entry.get("senses"), f"{where}: senses").items():
            for cue in strings(cues, f"{where}: senses: {sense}"):
                b.phrases.append(Phrase(cue, "ci", Cue(group, sense)))


def _disambiguation(dis: Mapping[str, Any]) -> Disambiguation:
    groups = mapping(dis.get("ambiguous"), "disambiguation.yaml: ambiguous")
    return Disambiguation(
        defaults={g: str(mapping(e, g).get("default")) for g, e in groups.items()},
        name_neighbours=frozenset(strings(dis.get("name_neighbours"), "disambiguation.yaml: name_neighbours")),
        language_after=frozenset(normalize(w) for w in strings(dis.get("language_after"), "language_after")),
        language_before=frozenset(normalize(w) for w in strings(dis.get("language_before"), "language_before")),
        domain_endings=tuple(strings(dis.get("domain_endings"), "disambiguation.yaml: domain_endings")),
    )
