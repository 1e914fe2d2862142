"""Reading the curated feeds file and OPML: people's lists of sources, as given.

These readers check the shape of a file (YAML with a `feeds:` list, well-formed OPML without
entity tricks) and hand back `SourceInput`s; whether each source is acceptable is decided by the
one check every way in shares (aggregator.sources.spec, through aggregator.sources.registry).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import yaml
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from aggregator.errors import ConfigError
from aggregator.sources.spec import SourceInput

CHUNK = 1 << 20


def load_feeds_file(path: Path) -> list[SourceInput]:
    """The entries of a feeds.yaml; a clear ConfigError names a malformed one. A feed without
    `countries` or `topics` has none: the file is the truth about its sources."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read feeds file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"feeds file {path} is not valid YAML: {exc}") from exc
    entries = (data or {}).get("feeds") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"feeds file {path} must have a top-level `feeds:` list")
    found = []
    for n, entry in enumerate(entries, 1):
        where = f"{path} entry {n}"
        if not isinstance(entry, dict) or "url" not in entry:
            raise ConfigError(f"{where}: each feed needs at least a `url`")
        found.append(SourceInput(
            url=str(entry["url"]),
            name=str(entry["name"]) if entry.get("name") else None,
            countries=_code_list(entry.get("countries"), "countries", where),
            topics=_code_list(entry.get("topics"), "topics", where),
            where=where,
        ))
    return found


def _code_list(value: object, what: str, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {what} must be a list of codes, got {value!r}")
    return value


class _OpmlParser(DefusedXMLParser):
    """defusedxml's parser, also refusing a DOCTYPE that names an external DTD.

    Why: an OPML file comes from someone else's export. An entity declaration can expand to
    gigabytes (billion laughs) or pull in a local file or URL (XXE), and no OPML needs one, so
    any declaration is refused rather than bounded. A plain `<!DOCTYPE opml>` stays accepted;
    one naming an external DTD is refused too, so that nothing in the file can make us read
    something else, whatever the XML library does with such references in a later version.
    """

    def __init__(self, target: _Outlines) -> None:
        super().__init__(target=target, forbid_dtd=False, forbid_entities=True, forbid_external=True)
        self.parser.StartDoctypeDeclHandler = self._refuse_external_dtd

    def _refuse_external_dtd(self, name: str, sysid: str | None, pubid: str | None, internal: bool) -> None:
        if sysid or pubid:
            raise DTDForbidden(name, sysid, pubid)


class _Outlines:
    """The parser's target: keeps the feed outlines and nothing else.

    No element tree is built, so a file nested 100,000 levels deep costs no more than a flat one
    (walking such a tree recursively is what fails), and counting outlines as they arrive stops a
    file over the cap before the rest of it is read.
    """

    def __init__(self, max_outlines: int) -> None:
        self.max_outlines = max_outlines
        self.line: Callable[[], int] = lambda: 0  # where the parser is, for messages
        self.count = 0
        self.root: str | None = None
        self.found: list[SourceInput] = []

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if self.root is None:
            self.root = tag.rpartition("}")[2]
            if self.root != "opml":
                raise ConfigError(f"not an OPML file: its root element is <{self.root[:40]}>, not <opml>")
        if tag != "outline":
            return
        self.count += 1
        if self.max_outlines and self.count > self.max_outlines:
            raise ConfigError(f"OPML file refused: more than {self.max_outlines} outlines (the limit is "
                              "AGGREGATOR_OPML_MAX_OUTLINES); import it in parts or raise the limit")
        url = attrs.get("xmlUrl") or attrs.get("xmlurl")
        if url:
            name = attrs.get("title") or attrs.get("text") or None
            self.found.append(SourceInput(url, name, where=f"line {self.line()}"))

    def end(self, tag: str) -> None:
        pass

    def data(self, text: str) -> None:
        pass

    def close(self) -> list[SourceInput]:
        return self.found


def _parse_opml_xml(chunks: Iterable[bytes], max_outlines: int) -> list[SourceInput]:
    """The feed outlines; every refusal or syntax error as one ConfigError, mapped here once."""
    target = _Outlines(max_outlines)
    parser = _OpmlParser(target)
    target.line = lambda: parser.parser.CurrentLineNumber
    try:
        for chunk in chunks:
            parser.feed(chunk)
        found: list[SourceInput] = parser.close()
        return found
    except EntitiesForbidden as exc:
        raise ConfigError(f"OPML file refused: it declares the entity {exc.name!r}, and entity declarations "
                          "are not accepted (they can expand without bound or read local files)") from exc
    except (DTDForbidden, ExternalReferenceForbidden) as exc:
        raise ConfigError(f"OPML file refused: it refers to an external DTD or entity ({exc.sysid or exc.pubid}); "
                          "nothing outside the file is read") from exc
    except ET.ParseError as exc:
        raise ConfigError(f"not a valid OPML file: {exc}") from exc


def read_opml(data: bytes, *, max_outlines: int = 0) -> list[SourceInput]:
    """Feed outlines of an OPML file (nested folders included), in file order, unchecked."""
    return _parse_opml_xml([data], max_outlines)


def read_opml_file(path: Path, *, max_outlines: int = 0) -> list[SourceInput]:
    """`read_opml` of a file, read in chunks; a missing or unreadable file is a ConfigError."""
    try:
        with path.open("rb") as file:
            return _parse_opml_xml(_chunks(file), max_outlines)
    except OSError as exc:
        raise ConfigError(f"cannot read OPML file {path}: {exc.strerror or exc}") from exc


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(CHUNK):
        yield chunk


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
