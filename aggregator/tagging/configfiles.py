"""Reading the taxonomy's YAML files with errors that name the file and the offending entry.

Every check here exists so that a reviewer who edits `defaults/taxonomy/` gets a ConfigError saying what is
wrong and where, at load time, rather than a silently worse tagger or a KeyError deep in the tagging code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from aggregator.errors import ConfigError

FILES = (
    "VERSION",
    "boilerplate.yaml",
    "countries.yaml",
    "disambiguation.yaml",
    "focus-countries.yaml",
    "places.yaml",
    "regions.yaml",
    "ru/countries.yaml",
    "ru/forms.json",
    "topic-model.yaml",
    "topics.yaml",
)


def read_yaml(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: taxonomy file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read taxonomy file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def read_version(folder: Path) -> str:
    path = folder / "VERSION"
    try:
        version = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read taxonomy version: {exc}") from exc
    if not version or len(version.split()) != 1:
        raise ConfigError(f"{path}: expected one version string such as 2026.11.1, got {version!r}")
    return version


def mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{where}: keys must be strings, got {key!r}")
    return value


def strings(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of strings, got {type(value).__name__}")
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{where}: expected non-empty strings, got {item!r}")
        out.append(item.strip())
    return out


def number(value: object, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


def text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return " ".join(value.split())


def weighted_terms(value: object, where: str) -> dict[str, float]:
    """A `{phrase: weight}` mapping; weights may be negative (EMM-style NOT terms) but not zero."""
    terms = {}
    for phrase, weight in mapping(value, where).items():
        w = number(weight, f"{where}: {phrase!r}")
        if w == 0:
            raise ConfigError(f"{where}: {phrase!r} has weight 0; remove the phrase instead")
        terms[phrase] = w
    if not terms:
        raise ConfigError(f"{where}: no phrases")
    return terms
