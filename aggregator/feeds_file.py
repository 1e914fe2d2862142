"""Reading the curated feeds file and OPML: people's lists of sources, validated at the edge."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

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


class _OpmlParser(DefusedXMLParser):
    """defusedxml's parser, also refusing a DOCTYPE that names an external DTD.

    Why: an OPML file comes from someone else's export. An entity declaration can expand to
    gigabytes (billion laughs) or pull in a local file or URL (XXE), and no OPML needs one, so
    any declaration is refused rather than bounded. A plain `<!DOCTYPE opml>` stays accepted;
    one naming an external DTD is refused too, so that nothing in the file can make us read
    something else, whatever the XML library does with such references in a later version.
    """

    def __init__(self) -> None:
        super().__init__(forbid_dtd=False, forbid_entities=True, forbid_external=True)
        self.parser.StartDoctypeDeclHandler = self._refuse_external_dtd

    def _refuse_external_dtd(self, name: str, sysid: str | None, pubid: str | None, internal: bool) -> None:
        if sysid or pubid:
            raise DTDForbidden(name, sysid, pubid)


def _parse_opml_xml(data: bytes) -> ET.Element:
    """The document's root; every refusal or syntax error as one ConfigError, mapped here once."""
    parser = _OpmlParser()
    try:
        parser.feed(data)
        return parser.close()
    except EntitiesForbidden as exc:
        raise ConfigError(f"OPML file refused: it declares the entity {exc.name!r}, and entity declarations "
                          "are not accepted (they can expand without bound or read local files)") from exc
    except (DTDForbidden, ExternalReferenceForbidden) as exc:
        raise ConfigError(f"OPML file refused: it refers to an external DTD or entity ({exc.sysid or exc.pubid}); "
                          "nothing outside the file is read") from exc
    except ET.ParseError as exc:
        raise ConfigError(f"not a valid OPML file: {exc}") from exc


def read_opml(data: bytes) -> list[SourceSpec]:
    """Feed outlines of an OPML file (nested folders included)."""
    root = _parse_opml_xml(data)
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
