"""Adding sources to the database: the one way in, for the CLI, the API, the feeds file and OPML.

Every source is checked by `check_source` (URL rules, codes against the taxonomy) before it is
stored, whoever adds it; what differs between the ways in is only what happens to a source that
is already known, and the `origin` recorded (config | cli | api | opml):

- `add_source` (CLI `feeds add`, `backfill`, `POST /api/v1/sources`): adds, or updates and
  re-enables a known source; codes not given are kept.
- `edit_source` (`PATCH /api/v1/sources/{id}`): changes what is given and nothing else.
- `import_sources` (OPML): adds the new ones in batches and leaves known ones as they are; a bad
  entry is reported with its reason and does not stop the others.
- `sync_feeds_file`: makes the database agree with the feeds file; a bad entry stops it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import Source
from aggregator.errors import ConfigError, InvalidQueryError
from aggregator.query import Vocabulary
from aggregator.sources.files import load_feeds_file
from aggregator.sources.spec import Origin, SourceInput, SourceSpec, check_codes, check_source, clean_name

log = logging.getLogger(__name__)

IMPORT_BATCH = 1000


def load_vocabulary(settings: Settings) -> Vocabulary:
    """The codes a source may name: the configured taxonomy's (loaded once per process)."""
    from aggregator.tagging import load_taxonomy

    return Vocabulary.from_taxonomy(load_taxonomy(Path(settings.taxonomy_dir) if settings.taxonomy_dir else None))


def add_source(conn: psycopg.Connection, given: SourceInput, *, origin: Origin, vocabulary: Vocabulary,
               poll_interval: int) -> tuple[Source, bool]:
    """Check `given` and add it, or update and re-enable the known source; returns (source, created).
    A bad source raises InvalidQueryError naming the field (`url`, `countries`, `topics`)."""
    spec = check_source(given, vocabulary)
    return sources_db.add(conn, spec, origin=origin, poll_interval=poll_interval)


def edit_source(conn: psycopg.Connection, source: Source, *, vocabulary: Vocabulary, name: str | None = None,
                countries: Sequence[str] | None = None, topics: Sequence[str] | None = None,
                enabled: bool | None = None) -> None:
    """Change what is given (None: keep) in the caller's transaction. The upsert re-enables a
    source, which an edit must only do when asked, so the disabled state is restored after it."""
    codes = check_codes(countries, topics, vocabulary)
    spec = SourceSpec(source.url, clean_name(name), *codes)
    sources_db.add(conn, spec, origin=source.origin, poll_interval=source.poll_interval)
    if enabled is False:
        sources_db.disable(conn, source.id, "disabled through the API")
    elif enabled is None and not source.enabled:
        sources_db.disable(conn, source.id, source.disabled_reason or "disabled")


@dataclass(slots=True)
class ImportReport:
    added: int = 0
    present: int = 0  # known already, or named twice in the file
    rejected: list[str] = field(default_factory=list)  # "where: why", one per refused entry

    def summary(self, source: str) -> str:
        return (f"imported {self.added} feed(s) from {source}: {self.present} already present, "
                f"{len(self.rejected)} rejected")


def import_sources(db: Database, given: Sequence[SourceInput], *, origin: Origin, vocabulary: Vocabulary,
                   poll_interval: int, progress: Callable[[int], None] | None = None) -> ImportReport:
    """Add the acceptable new sources of a list (an OPML file) in batches, one transaction each.

    Known sources (also by a URL they moved away from) are left as they are: importing a list
    must not re-enable what someone disabled, nor take a feeds-file source out of the file's hands.
    `progress(n)` is called with the number of entries handled so far.
    """
    report = ImportReport()
    seen: set[str] = set()
    for start in range(0, len(given), IMPORT_BATCH):
        batch = given[start:start + IMPORT_BATCH]
        specs = []
        for entry in batch:
            try:
                spec = check_source(entry, vocabulary)
            except InvalidQueryError as exc:
                report.rejected.append(f"{entry.where}: {exc}")
                continue
            if spec.url in seen:
                report.present += 1
                continue
            seen.add(spec.url)
            specs.append(spec)
        with db.connection() as conn:
            known = sources_db.known_urls(conn, [s.url for s in specs])
            inserted = sources_db.insert_new(conn, [s for s in specs if s.url not in known], origin=origin,
                                             poll_interval=poll_interval)
        report.added += len(inserted)
        report.present += len(specs) - len(inserted)
        if progress:
            progress(start + len(batch))
    log.info("sources.imported origin=%s added=%d known=%d rejected=%d", origin, report.added, report.present,
             len(report.rejected))
    return report


@dataclass(frozen=True, slots=True)
class SyncReport:
    added: list[str]
    updated: list[str]
    disabled: list[str]


def sync_feeds_file(db: Database, settings: Settings, vocabulary: Vocabulary | None = None) -> SyncReport:
    """Make the database agree with the feeds file (FEEDS_FILE): add new, update names/tags, disable removed.

    The file is configuration: one bad entry is a ConfigError naming it, and nothing is changed.
    """
    vocabulary = vocabulary or load_vocabulary(settings)
    specs: dict[str, SourceSpec] = {}
    for entry in load_feeds_file(settings.feeds_file):
        try:
            spec = check_source(entry, vocabulary)
        except InvalidQueryError as exc:
            raise ConfigError(f"{entry.where}: {exc}") from exc
        if spec.url in specs:
            raise ConfigError(f"{entry.where}: duplicate url {spec.url}")
        specs[spec.url] = spec
    added, updated = [], []
    with db.connection() as conn:
        for spec in specs.values():
            _, created = sources_db.add(conn, spec, origin="config", poll_interval=settings.default_interval)
            (added if created else updated).append(spec.url)
        disabled = sources_db.disable_missing_from_config(conn, list(specs))
    log.info("feeds.synced file=%s added=%d kept=%d disabled=%d", settings.feeds_file, len(added),
             len(updated), len(disabled))
    return SyncReport(added, updated, disabled)
