"""Re-tag stored posts after a taxonomy change, in batches, beside running workers.

Each batch is read and written in its own short transaction, so polling (which touches the same
tables) never waits more than one batch write; tagging itself runs on the parse pool's cores
while the next batch is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from datetime import datetime
from pathlib import Path

from aggregator.db import Database
from aggregator.db import facets as facets_db
from aggregator.db import tags as tags_db
from aggregator.ingest.tag_stage import retag_batch
from aggregator.tagging import Tag, load_taxonomy

Row = tuple[int, str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str | None]
Result = list[tuple[int, list[Tag], str | None]]


def _batches(db: Database, since: datetime | None, size: int) -> Iterator[list[Row]]:
    after = 0
    while True:
        with db.connection() as conn:
            batch = tags_db.batch_for_retag(conn, after_id=after, limit=size, since=since)
        if not batch:
            return
        after = batch[-1].id
        yield [(p.id, p.title, p.text, tuple(p.categories), tuple(p.default_countries), tuple(p.default_topics),
                p.lang) for p in batch]


def count_posts(db: Database, since: datetime | None) -> int:
    with db.connection() as conn:
        return tags_db.count_for_retag(conn, since)


def retag(
    db: Database,
    *,
    since: datetime | None = None,
    taxonomy_dir: str | None = None,
    executor: Executor | None = None,
    batch_size: int = 500,
    progress: Callable[[int], None] = lambda done: None,
) -> int:
    """Re-tag every post (published since `since`) and re-detect its language; returns how many.
    Each rewritten post marks its month changed, so the facet rollup (places and regions included)
    is rebuilt from the new tags at the web server's next refresh."""
    taxonomy = load_taxonomy(Path(taxonomy_dir) if taxonomy_dir else None)
    version = taxonomy.version
    with db.connection() as conn:  # the rollup's regions follow the taxonomy the posts are tagged with
        facets_db.sync_regions(conn, facets_db.region_definitions(taxonomy))
    done = 0
    pending: list[Future[Result]] = []
    depth = 4 if executor else 0  # batches in flight: keeps every core busy while one batch is written

    def write(result: Result) -> None:
        nonlocal done
        with db.connection() as conn:
            tags_db.replace_tags(conn, [(post_id, tags) for post_id, tags, _ in result], version, update_posts=True,
                                 langs={post_id: lang for post_id, _, lang in result})
        done += len(result)
        progress(done)

    for batch in _batches(db, since, batch_size):
        if executor is None:
            write(retag_batch(batch, taxonomy_dir))
            continue
        pending.append(executor.submit(retag_batch, batch, taxonomy_dir))
        while len(pending) >= depth:
            write(pending.pop(0).result())
    for future in pending:
        write(future.result())
    return done
