"""The country gazetteer: pycountry names plus defaults/taxonomy, compiled into one phrase layer.

The layer holds five kinds of phrases, all competing for the same words so that the longest wins:
country aliases, region aliases, blockers ("Washington Post", "Soviet Union": phrases that contain a
country alias but do not mention it), context cues for ambiguous names ("Atlanta" for the US state of
Georgia) and places below the country (Chechnya, the Fergana Valley). Regions never make country mentions
on their own unless configured to (Fergana Valley). A place alias may share its words with a country alias
("Dagestan" is a place and a mention of RU): both payloads are reported.

Russian entries (ru/countries.yaml, the `ru` aliases of places.yaml) are base forms; every inflected form
is generated here (aggregator/tagging/russian.py), so the text is matched as written, never stemmed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pycountry

from aggregator.errors import ConfigError
from aggregator.tagging import russian
from aggregator.tagging.configfiles import mapping, number, read_yaml, strings, text
from aggregator.tagging.matcher import Phrase, normalize

log = logging.getLogger(__name__)

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
class PlaceAlias:
    place: str


@dataclass(frozen=True, slots=True)
class Place:
    """A place below the country: display name, its country (None for a cross-border one), its parent."""

    name: str
    country: str | None
    within: str | None


@dataclass(frozen=True, slots=True)
class Gazetteer:
    """What build_gazetteer compiles: names, regions, places and the phrase layer."""

    countries: dict[str, str]
    regions: dict[str, Region]
    region_places: dict[str, frozenset[str]]  # region code -> the places it means (and their parts); {} = countries
    places: dict[str, Place]
    phrases: list[Phrase]
    disambiguation: Disambiguation


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
    """Word lists the country resolver consults (see defaults/taxonomy/disambiguation.yaml)."""

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

    def alias(self, alias: str, code: str, kind: str, weight: float, case: str | None = None) -> None:
        key = normalize(alias)
        payload = CountryAlias(code, RULE_NAMES[kind], weight, self.groups.get(key), key in self.person,
                               key in self.languages)
        self.phrases.append(Phrase(alias, case or _case_mode(alias, kind, self.case_sensitive), payload))


def _russian_case(form: str) -> str:
    """Capitalised Russian names must be capitalised in the text; lower-case entries (adjectives,
    demonyms) match in any case; acronyms only in capitals."""
    letters = re.sub(r"[^\w]", "", form)
    if len(letters) >= 2 and letters.isupper():
        return "exact"
    return "cap" if form[:1].isupper() else "ci"




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


def build_gazetteer(folder: Path, forms: russian.FormCache | None = None) -> Gazetteer:
    """Country display names, regions, places, the phrase layer, and the resolver's word lists.

    Russian forms come from `forms` (default: the taxonomy's generated ru/forms.json)."""
    forms = forms or russian.FormCache.load(folder)
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
    ru = read_yaml(folder, RUSSIAN_FILE)
    _russian_countries(ru, b, set(display), weights, forms)
    places = _places(folder, set(display), b.phrases, forms)
    regions, region_places = _regions(folder, set(display), places, b.phrases, ru, forms)
    _blockers_and_cues(b)
    for form in forms.forms(strings(ru.get("blockers"), f"{RUSSIAN_FILE}: blockers")):
        b.phrases.append(Phrase(form, "ci", Blocker(form)))
    if forms.generated:
        log.warning("taxonomy.forms_stale file=%s generated=%d (run `aggregator taxonomy-forms`)",
                    folder / russian.FORMS_FILE, len(forms.generated))
        russian.release()
    return Gazetteer(display, regions, region_places, places, b.phrases, _disambiguation(b.dis, ru))


RUSSIAN_FILE = "ru/countries.yaml"


def _russian_countries(ru: Mapping[str, Any], b: _Builder, codes: set[str], weights: Mapping[str, float],
                       forms: russian.FormCache) -> None:
    languages = forms.forms(strings(ru.get("languages"), f"{RUSSIAN_FILE}: languages"))
    b.languages |= {normalize(f) for f in languages}
    owners: dict[str, str] = {}
    for code, entry in mapping(ru.get("countries"), f"{RUSSIAN_FILE}: countries").items():
        if code not in codes:
            raise ConfigError(f"{RUSSIAN_FILE}: {code!r} is not an ISO 3166-1 alpha-2 code (nor declared in `extra`)")
        for kind, entries in mapping(entry, f"{RUSSIAN_FILE}: {code}").items():
            if kind not in ALIAS_KINDS:
                raise ConfigError(f"{RUSSIAN_FILE}: {code}: unknown key {kind!r} (use {', '.join(ALIAS_KINDS)})")
            for form in forms.forms(strings(entries, f"{RUSSIAN_FILE}: {code}: {kind}"), surname=kind == "leaders"):
                key = normalize(form)
                if owners.setdefault(key, code) != code:
                    raise ConfigError(f"{RUSSIAN_FILE}: {form!r} is claimed by {owners[key]} and {code}")
                b.alias(form, code, kind, weights[kind], _russian_case(form))


_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _slug(code: object, where: str) -> None:
    """Place and region codes are lowercase words joined by hyphens: they are URL parameters, and
    facet keys that join several codes with ',' and ';' (aggregator.db.facets)."""
    if not isinstance(code, str) or not _SLUG.fullmatch(code):
        raise ConfigError(f"{where}: the code must be lowercase letters and digits, words joined by '-'")


def _places(folder: Path, codes: set[str], phrases: list[Phrase], forms: russian.FormCache) -> dict[str, Place]:
    places: dict[str, Place] = {}
    entries = mapping(read_yaml(folder, "places.yaml").get("places"), "places.yaml: places")
    for code, entry in entries.items():
        where = f"places.yaml: {code}"
        _slug(code, where)
        entry = mapping(entry, where)
        unknown = sorted(set(entry) - {"name", "country", "within", "en", "ru"})
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown} (use name, country, within, en, ru)")
        country = entry.get("country")
        if country is not None and country not in codes:
            raise ConfigError(f"{where}: country {country!r} is not a known code")
        within = entry.get("within")
        if within is not None and within not in entries:
            raise ConfigError(f"{where}: within {within!r} is not a place of places.yaml")
        places[code] = Place(text(entry.get("name"), f"{where}: name"), country, within)
        for alias in strings(entry.get("en"), f"{where}: en"):
            phrases.append(Phrase(alias, _russian_case(alias) if alias.isupper() else "cap", PlaceAlias(code)))
        for form in forms.forms(strings(entry.get("ru"), f"{where}: ru")):
            phrases.append(Phrase(form, _russian_case(form), PlaceAlias(code)))
    for code in places:
        seen, parent = {code}, places[code].within
        while parent is not None:
            if parent in seen:
                raise ConfigError(f"places.yaml: {code}: `within` makes a cycle through {parent!r}")
            seen.add(parent)
            parent = places[parent].within
    return places


def place_parts(places: Mapping[str, Place], code: str) -> frozenset[str]:
    """A place and every place within it, at any depth (what filtering on the place means)."""
    found = {code}
    changed = True
    while changed:
        changed = False
        for other, place in places.items():
            if place.within in found and other not in found:
                found.add(other)
                changed = True
    return frozenset(found)


def _regions(folder: Path, codes: set[str], places: Mapping[str, Place], phrases: list[Phrase],
             ru: Mapping[str, Any], forms: russian.FormCache) -> tuple[dict[str, Region], dict[str, frozenset[str]]]:
    regions, region_places = {}, {}
    ru_aliases = mapping(ru.get("regions"), f"{RUSSIAN_FILE}: regions")
    entries = mapping(read_yaml(folder, "regions.yaml").get("regions"), "regions.yaml: regions")
    for code in sorted(set(ru_aliases) - set(entries)):
        raise ConfigError(f"{RUSSIAN_FILE}: regions: {code!r} is not a region of regions.yaml")
    for code, entry in entries.items():
        where = f"regions.yaml: {code}"
        _slug(code, where)
        entry = mapping(entry, where)
        members = strings(entry.get("countries"), f"{where}: countries")
        unknown = sorted(set(members) - codes)
        if unknown or not members:
            raise ConfigError(f"{where}: countries must be known codes, got unknown {unknown or 'none at all'}")
        regions[code] = Region(text(entry.get("name"), f"{where}: name"), frozenset(members))
        implies = tuple(sorted(members)) if entry.get("implies_mentions") is True else ()
        for alias in strings(entry.get("aliases"), f"{where}: aliases"):
            phrases.append(Phrase(alias, "cap", RegionAlias(code, implies)))
        for form in forms.forms(strings(ru_aliases.get(code), f"{RUSSIAN_FILE}: regions: {code}")):
            phrases.append(Phrase(form, _russian_case(form), RegionAlias(code, implies)))
        within = strings(entry.get("places"), f"{where}: places")
        unknown_places = sorted(set(within) - set(places))
        if unknown_places:
            raise ConfigError(f"{where}: places must be places of places.yaml, got unknown {unknown_places}")
        if within:
            region_places[code] = frozenset().union(*(place_parts(places, p) for p in within))
    return regions, region_places


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


def _disambiguation(dis: Mapping[str, Any], ru: Mapping[str, Any]) -> Disambiguation:
    groups = mapping(dis.get("ambiguous"), "disambiguation.yaml: ambiguous")
    after = strings(dis.get("language_after"), "language_after") + strings(ru.get("language_after"), "language_after")
    before = (strings(dis.get("language_before"), "language_before")
              + strings(ru.get("language_before"), "language_before"))
    return Disambiguation(
        defaults={g: str(mapping(e, g).get("default")) for g, e in groups.items()},
        name_neighbours=frozenset(strings(dis.get("name_neighbours"), "disambiguation.yaml: name_neighbours")),
        language_after=frozenset(normalize(w) for w in after),
        language_before=frozenset(normalize(w) for w in before),
        domain_endings=tuple(strings(dis.get("domain_endings"), "disambiguation.yaml: domain_endings")),
    )
