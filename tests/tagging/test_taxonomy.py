"""Loading the taxonomy: what it exposes, caching and versioning, and clear errors for bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pycountry
import pytest

from aggregator.errors import ConfigError
from aggregator.tagging import Taxonomy, load_taxonomy
from aggregator.tagging.taxonomy import DEFAULT_FOLDER

TOPIC_CODES = {"terrorism", "armed-conflict", "military", "border-security", "crime-trafficking", "corruption",
               "unrest", "human-rights", "cyber", "migration", "elections-governance", "diplomacy"}


def test_every_iso_country_and_the_twelve_topics(taxonomy: Taxonomy) -> None:
    assert {c.alpha_2 for c in pycountry.countries} <= set(taxonomy.countries)
    assert taxonomy.countries["KZ"] == "Kazakhstan"
    assert set(taxonomy.topics) == TOPIC_CODES
    assert all(taxonomy.topic_descriptions[code] for code in TOPIC_CODES)


@pytest.mark.parametrize(("region", "members"), [
    ("central-asia", {"KZ", "KG", "TJ", "TM", "UZ"}),
    ("south-caucasus", {"AM", "AZ", "GE"}),
    ("north-caucasus", {"RU"}),
    ("fergana-valley", {"UZ", "KG", "TJ"}),
])
def test_regions_expand_to_countries(taxonomy: Taxonomy, region: str, members: set[str]) -> None:
    name, countries = taxonomy.regions[region]
    assert name and countries == frozenset(members)
    assert taxonomy.region_countries(region) == countries


def test_pickles_by_reloading(taxonomy: Taxonomy) -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(taxonomy))
    assert copy.version == taxonomy.version and hash(copy) is not None


def test_loading_is_cached_and_versioned(taxonomy: Taxonomy) -> None:
    assert load_taxonomy() is load_taxonomy()
    declared = (DEFAULT_FOLDER / "VERSION").read_text().strip()
    assert taxonomy.version.startswith(declared + "+")


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "taxonomy"
    shutil.copytree(DEFAULT_FOLDER, copy)
    return copy


def test_a_changed_file_changes_the_version(folder: Path) -> None:
    before = load_taxonomy(folder).version
    topics = folder / "topics.yaml"
    topics.write_text(topics.read_text().replace('"hostage*": 1.5', '"hostage*": 1.6'))
    assert load_taxonomy(folder).version != before


def test_an_alias_added_as_data_is_matched(folder: Path) -> None:
    from aggregator.tagging import TagInput, tag_post

    path = folder / "focus-countries.yaml"
    path.write_text(path.read_text().replace("places: [Bishkek,", "places: [Bishkek, Sary-Tash,"))
    tags = tag_post(TagInput(title="", text="A new road reached Sary-Tash."), load_taxonomy(folder))
    assert [t.code for t in tags if t.kind == "country"] == ["KG"]


BROKEN = [
    ("topics.yaml", lambda s: s + "\n  oops: [", "invalid YAML"),
    ("topics.yaml", lambda s: s.replace("threshold: 3.0", "threshold: high", 1), "expected a number"),
    ("topics.yaml", lambda s: s.replace("not_in: [sports]", "not_in: [chess]", 1), "unknown contexts"),
    ("regions.yaml", lambda s: s.replace("countries: [KZ, KG, TJ, TM, UZ]", "countries: [KZ, XX]"),
     "unknown"),
    ("regions.yaml", lambda s: s + "  caspian;basin:\n    name: Caspian basin\n    countries: [KZ]\n",
     "lowercase letters"),
    ("places.yaml", lambda s: s.replace("  dagestan:", "  Dagestan,RU:", 1), "lowercase letters"),
    ("countries.yaml", lambda s: s.replace("  AD: {", "  ZZ: {"), "not an ISO 3166-1"),
    ("countries.yaml", lambda s: s.replace("places: [Luanda]", "places: [Luanda, Tashkent]"),
     "claimed by several countries"),
    ("focus-countries.yaml", lambda s: s.replace("    demonyms: [Kazakh,", "    demonym: [Kazakh,"),
     "unknown key"),
    ("boilerplate.yaml", lambda s: s.replace("  - 'post a comment'", "  - 'post a (comment'"),
     "invalid regular expression"),
    ("VERSION", lambda s: "", "version"),
]


@pytest.mark.parametrize(("name", "breaks", "message"), BROKEN, ids=[f"{b[0]}-{b[2]}" for b in BROKEN])
def test_bad_files_raise_config_error(folder: Path, name: str, breaks, message: str) -> None:
    path = folder / name
    path.write_text(breaks(path.read_text()))
    with pytest.raises(ConfigError, match=message) as info:
        load_taxonomy(folder)
    assert name in str(info.value)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_taxonomy(tmp_path / "nowhere")


def test_missing_file(folder: Path) -> None:
    (folder / "regions.yaml").unlink()
    with pytest.raises(ConfigError, match=r"regions\.yaml: taxonomy file is missing"):
        load_taxonomy(folder)
