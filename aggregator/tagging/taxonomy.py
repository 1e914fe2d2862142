"""The taxonomy: countries, regions and topics as reviewable data in defaults/taxonomy/, loaded once.

`load_taxonomy` reads and validates every file, compiles the phrase layers, and caches the result per
folder and file stamp, so repeated calls are free while an edited file is picked up by a new call.
The version is the declared VERSION plus a hash of the files' content: stored tags name the exact rules
that produced them, even when someone forgets to bump VERSION.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path
from types import MappingProxyType

from aggregator.errors import ConfigError
from aggregator.tagging import russian
from aggregator.tagging.configfiles import FILES, number, read_version, read_yaml, strings
from aggregator.tagging.gazetteer import Disambiguation, Place, Region, build_gazetteer, place_parts
from aggregator.tagging.matcher import PhraseIndex
from aggregator.tagging.salience import TopicModel, load_model
from aggregator.tagging.textprep import ClutterRules, compile_clutter
from aggregator.tagging.topicrules import TopicRule, build_topics, topic_names

DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / "defaults" / "taxonomy"  # shipped in the package


@dataclass(frozen=True, slots=True)
class Compiled:
    """What the tagger needs at run time; built once per taxonomy."""

    index: PhraseIndex  # country aliases, regions, blockers, cues and topic phrases, one regex
    clutter: ClutterRules
    disambiguation: Disambiguation
    topic_rules: Mapping[str, TopicRule]
    context_thresholds: Mapping[str, float]
    topic_model: TopicModel | None  # None: the rule thresholds decide (used while fitting)


@dataclass(frozen=True, slots=True, eq=False)
class Taxonomy:
    """Countries (code -> name), regions (code -> Region(name, countries)), topics (code -> name).

    `Region` is a named tuple: `name, countries = taxonomy.regions["central-asia"]` works.
    Compared and hashed by identity (it is loaded once and shared). Pickling sends the folder, not the
    compiled rules, so a process pool reloads it from the same files.
    """

    version: str
    countries: Mapping[str, str]
    regions: Mapping[str, Region]
    topics: Mapping[str, str]
    topic_descriptions: Mapping[str, str]
    source: Path = field(repr=False)
    compiled: Compiled = field(repr=False)
    places: Mapping[str, Place] = field(default_factory=dict)
    region_places: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def region_countries(self, code: str) -> frozenset[str]:
        """The countries a region code stands for (API filtering)."""
        return self.regions[code].countries

    def place_parts(self, code: str) -> frozenset[str]:
        """A place and the places within it: what `place=CODE` finds."""
        return place_parts(self.places, code)

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return load_taxonomy, (self.source,)


def _content_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in FILES:
        path = folder / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    digest.update(package_version("pycountry").encode())  # its names are part of the gazetteer
    digest.update(russian.dictionary_version().encode())  # so are the Russian forms it generates
    return digest.hexdigest()[:10]


def _clutter(folder: Path, endings: tuple[str, ...]) -> ClutterRules:
    data = read_yaml(folder, "boilerplate.yaml")
    try:
        return compile_clutter(
            strings(data.get("lines"), "boilerplate.yaml: lines"),
            strings(data.get("block_headings"), "boilerplate.yaml: block_headings"),
            strings(data.get("appeal_phrases"), "boilerplate.yaml: appeal_phrases"),
            endings,
            appeal_max_chars=int(number(data.get("appeal_max_chars"), "boilerplate.yaml: appeal_max_chars",
                                        positive=True)),
            block_end_min_chars=int(number(data.get("block_end_min_chars"),
                                           "boilerplate.yaml: block_end_min_chars", positive=True)),
        )
    except re.error as exc:
        raise ConfigError(f"{folder / 'boilerplate.yaml'}: invalid regular expression: {exc}") from exc


def _build(folder: Path) -> Taxonomy:
    if not folder.is_dir():
        raise ConfigError(f"{folder}: taxonomy folder does not exist")
    version = read_version(folder)
    forms = russian.FormCache.load(folder)
    gazetteer = build_gazetteer(folder, forms)
    countries, dis = gazetteer.countries, gazetteer.disambiguation
    topics, contexts, term_phrases = build_topics(folder, forms)
    try:
        index = PhraseIndex(gazetteer.phrases + term_phrases)
    except ValueError as exc:
        raise ConfigError(f"{folder}: {exc}") from exc
    unknown = sorted(set(dis.defaults.values()) - set(countries))
    if unknown:
        raise ConfigError(f"{folder / 'disambiguation.yaml'}: ambiguous: unknown default codes {unknown}")
    compiled = Compiled(index, _clutter(folder, dis.domain_endings), dis,
                        MappingProxyType(topics), MappingProxyType(contexts), load_model(folder, list(topics)))
    return Taxonomy(
        version=f"{version}+{_content_hash(folder)}",
        countries=MappingProxyType(dict(sorted(countries.items()))),
        regions=MappingProxyType(gazetteer.regions),
        topics=MappingProxyType(topic_names(topics)),
        topic_descriptions=MappingProxyType({c: r.description for c, r in topics.items()}),
        source=folder,
        compiled=compiled,
        places=MappingProxyType(gazetteer.places),
        region_places=MappingProxyType(gazetteer.region_places),
    )


@lru_cache(maxsize=8)
def _load_cached(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> Taxonomy:
    return _build(Path(folder))


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    stamps = []
    for name in FILES:
        try:
            st = (folder / name).stat()
        except OSError:
            stamps.append((name, -1, -1))
        else:
            stamps.append((name, st.st_mtime_ns, st.st_size))
    return tuple(stamps)


_LOADING = threading.Lock()


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """The taxonomy in `path` (default: the package's defaults/taxonomy); ConfigError names a bad file and entry.

    Loading takes about a second; the lock makes threads that start polling together build it once.
    """
    folder = (path or DEFAULT_FOLDER).resolve()
    with _LOADING:
        return _load_cached(str(folder), _stamp(folder))


def write_russian_forms(path: Path | None = None, *, check: bool = False) -> tuple[Path, bool]:
    """Regenerate ru/forms.json from the Russian entries of the taxonomy in `path` (needs the dictionary).

    Returns the file and whether it was stale; with `check`, only tells (nothing is written)."""
    folder = (path or DEFAULT_FOLDER).resolve()
    shipped = russian.FormCache.load(folder)
    build_gazetteer(folder, shipped)
    build_topics(folder, shipped)
    if check or not shipped.stale():
        return folder / russian.FORMS_FILE, shipped.stale()
    fresh = russian.FormCache({})
    build_gazetteer(folder, fresh)
    build_topics(folder, fresh)
    return fresh.write(folder), True
