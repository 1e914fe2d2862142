"""What every digest operation needs, built once per process: settings, database, the taxonomy's
codes and names, the link signer. The web app, the scheduler job and the CLI each build one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import subscriptions as subs_db
from aggregator.digest.build import Labels
from aggregator.digest.links import Links, mail_domain
from aggregator.query import Vocabulary

if TYPE_CHECKING:
    from aggregator.tagging import Taxonomy

SECRET_NAME = "digest-links"


@dataclass(frozen=True)
class DigestContext:
    settings: Settings
    db: Database
    vocabulary: Vocabulary
    labels: Labels
    links: Links

    @classmethod
    def create(cls, settings: Settings, db: Database, *, taxonomy: Taxonomy | None = None) -> DigestContext:
        """`taxonomy` defaults to the configured one (aggregator.tagging.load_taxonomy)."""
        if taxonomy is None:
            from aggregator.tagging import load_taxonomy

            taxonomy = load_taxonomy(Path(settings.taxonomy_dir) if settings.taxonomy_dir else None)
        labels = Labels(dict(taxonomy.countries), dict(taxonomy.topics),
                        {code: region.name for code, region in taxonomy.regions.items()})
        return cls(settings, db, Vocabulary.from_taxonomy(taxonomy), labels,
                   Links.from_settings(settings, link_secret(settings, db)))

    @property
    def domain(self) -> str:
        return mail_domain(self.settings)


def link_secret(settings: Settings, db: Database) -> bytes:
    """DIGEST_SECRET when set; otherwise a key generated once and kept in the database, so every
    process (web servers and workers on several machines) signs and checks links alike."""
    if settings.digest_secret is not None and settings.digest_secret.get_secret_value():
        return settings.digest_secret.get_secret_value().encode()
    with db.connection() as conn:
        return subs_db.app_secret(conn, SECRET_NAME)
