"""Reading the curated feeds file and OPML: people's lists of sources, validated at the edge."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from aggregator.db.sources import SourceSpec
from aggregator.errors import ConfigError

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_TOPIC = re.compile(r"^[a-z][a-z-]*$")


def check_url(url: str, where: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: not an http(s) URL: {url!r}")
    return url


def _codes(value: object, pattern: re.Pattern[str], what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and pattern.match(v) for v in value):
        raise ConfigError(f"{where}: {what} must be a list like {pattern.pattern}, got {value!r}")
    return tuple(value)


def load_feeds_file(path: Path) -> list[SourceSpec]:
    """The sources of a feeds.yaml; a clear ConfigError names the bad entry."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read feeds file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"feeds file {path} is not valid YAML: {exc}") from exc
    entries = (data or {}).get("feeds") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"feeds file {path} must have a top-level `feeds:` list")
    specs: dict[str, SourceSpec] = {}
    for n, entry in enumerate(entries, 1):
        where = f"{path} entry {n}"
        if not isinstance(entry, dict) or "url" not in entry:
            raise ConfigError(f"{where}: each feed needs at least a `url`")
        url = check_url(str(entry["url"]), where)
        if url in specs:
            raise ConfigError(f"{where}: duplicate url {url}")
        specs[url] = SourceSpec(
            url=url,
            name=str(entry["name"]) if entry.get("name") else None,
            default_countries=_codes(entry.get("countries"), _COUNTRY, "countries", where),
            default_topics=_codes(entry.get("topics"), _TOPIC, "topics", where),
        )
    return list(specs.values())


def read_opml(data: bytes) -> list[SourceSpec]:
    """Feed outlines of an OPML file (nested folders included). Entity expansion is bounded by
    expat's own amplification limits."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfigError(f"not a valid OPML file: {exc}") from exc
    specs: dict[str, SourceSpec] = {}
    for outline in root.iter("outline"):
        url = outline.get("xmlUrl") or outline.get("xmlurl")
        if not url:
            continue
        url = check_url(url, "OPML outline")
        name = outline.get("title") or outline.get("text")
        specs.setdefault(url, SourceSpec(url=url, name=name or None))
    return list(specs.values())


def write_opml(sources: Iterable[tuple[str, str | None, str | None]], title: str = "aggregator feeds") -> bytes:
    """OPML 2.0 for (url, name, site_url) rows; ElementTree does the escaping."""
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(opml, "body")
    for url, name, site_url in sources:
        attrs = {"type": "rss", "text": name or url, "title": name or url, "xmlUrl": url}
        if site_url:
            attrs["htmlUrl"] = site_url
        ET.SubElement(body, "outline", attrs)
    ET.indent(opml)
    return ET.tostring(opml, encoding="utf-8", xml_declaration=True) + b"\n"
