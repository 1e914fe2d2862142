"""The tag stage between normalize and store: posts of one feed get their country/topic tags.

It runs where parsing runs (a worker process of the parse pool), so the CPU-bound half of ingest
is spread over the cores together. Story clustering's features are computed here too when clustering
is on: they need the tags, and where else they would be computed, the polling worker's one
interpreter, is what its threads and its clustering turns queue for. Everything passed in and out is
picklable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from aggregator.ingest import language
from aggregator.ingest.models import FeedContent, Post
from aggregator.ingest.parse import parse_and_normalize
from aggregator.stories.features import extract
from aggregator.tagging import Tag, TagInput, Taxonomy, load_taxonomy, tag_post

# A feed this long is an archive: a poll clusters only its newest posts (story_stage's
# MAX_CLUSTERED_PER_POLL), so the worker computes features for those alone instead of receiving
# about 16 KB of them (in memory) for every entry.
MAX_FEATURES_PER_FEED = 1_000


@dataclass(frozen=True, slots=True)
class TagContext:
    """Where the taxonomy lives and the source's own focus (a weak prior for the tagger)."""

    taxonomy_dir: str | None = None
    countries: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    # also compute each post's story features (clustering is on); a feed's known entries get them
    # too, which costs a parse process a fraction of what tagging them does
    story_features: bool = False

    def taxonomy(self) -> Taxonomy:
        return load_taxonomy(Path(self.taxonomy_dir) if self.taxonomy_dir else None)


def tags_for(title: str, text: str, labels: tuple[str, ...], ctx: TagContext, taxonomy: Taxonomy) -> list[Tag]:
    return tag_post(TagInput(title, text, labels, ctx.countries, ctx.topics), taxonomy)


def tag_posts(posts: tuple[Post, ...], ctx: TagContext) -> tuple[tuple[Post, ...], str]:
    taxonomy = ctx.taxonomy()
    features = ctx.story_features and len(posts) <= MAX_FEATURES_PER_FEED
    return tuple(_tagged(p, tuple(tags_for(p.title, p.text, p.categories, ctx, taxonomy)), features)
                 for p in posts), taxonomy.version


def _tagged(post: Post, tags: tuple[Tag, ...], features: bool) -> Post:
    """The post with its tags, and its story features when asked (one copy of the post: each
    `replace` of its sixteen fields costs a few microseconds)."""
    if not features:
        return replace(post, tags=tags)
    return replace(post, tags=tags, story_features=extract(post.title, post.text, tags))


def process_body(
    body: bytes, url: str, content_type: str | None, now: datetime, ctx: TagContext | None = None
) -> FeedContent:
    """parse -> normalize -> tag for one fetched body (top level: it runs in the parse pool)."""
    content = parse_and_normalize(body, url=url, content_type=content_type, now=now)
    if ctx is None or not content.posts:
        return content
    posts, version = tag_posts(content.posts, ctx)
    return replace(content, posts=posts, taxonomy_version=version)


def retag_batch(
    rows: list[tuple[int, str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str | None]],
    taxonomy_dir: str | None,
) -> list[tuple[int, list[Tag], str | None]]:
    """(post id, title, text, labels, source countries, source topics, stored language) ->
    (post id, tags, detected language), for retag: posts stored before language detection get theirs."""
    taxonomy = load_taxonomy(Path(taxonomy_dir) if taxonomy_dir else None)
    return [
        (post_id, tags_for(title, text, labels, TagContext(taxonomy_dir, countries, topics), taxonomy),
         language.detect(title, text, lang))
        for post_id, title, text, labels, countries, topics, lang in rows
    ]
