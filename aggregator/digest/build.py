"""Pure: the posts that arrived in a digest's window -> the digest a reader gets.

The same story often arrives from several feeds: as one post linked to several sources (the
ingest dedups by URL and entry id), or as posts of one story (ingest clusters reports of one event,
in any language, into a story: aggregator/stories/). Both make one item, the newest post leading
and the others listed as "also reported by". Posts stored before stories existed have none; they
fall back to the old rule, titles from different sources that are nearly the same. Items are
grouped by topic when the filter names places (the reader already knows
where; they want to know what kind of event), by country otherwise; groups with more stories come
first, items in a group newest first. At most `max_items` items are shown; the rest are counted
and linked to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.db.digests import WindowPost
from aggregator.sources.urls import redact_text

SIMILAR_TITLES = 0.75  # Jaccard similarity of title words from which two titles name one story
MIN_WORDS = 4  # shorter titles collapse only when equal: "Weekly update" is not one story
SUMMARY_CHARS = 220  # about two lines of the email's text column
MAX_TAGS = 4
_WORD = re.compile(r"\w+")
_SUFFIX = re.compile(r"\s+[-|–—]\s+[^-|–—]+$")  # "Title - Source Name"


@dataclass(frozen=True, slots=True)
class Labels:
    """Display names of codes (the taxonomy, reduced to what a digest prints)."""

    countries: Mapping[str, str]
    topics: Mapping[str, str]
    regions: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Item:
    title: str
    url: str | None
    source: str
    published: datetime
    summary: str
    tags: tuple[str, ...]
    also: tuple[str, ...]  # other sources that carried the story
    date_estimated: bool = False  # the feed gave no date: `published` is when the post was first seen


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Digest:
    label: str  # the filter in words: "Kazakhstan · Terrorism"
    total: int  # posts that matched in the window
    stories: int  # what they collapse into (of the posts read)
    sections: tuple[Section, ...]
    grouped_by: str  # "topic" | "country"
    covered: int = 0  # posts the shown items stand for
    read: int = 0  # posts read (the newest of the matches), which collapsed into `stories`
    alerts: tuple[str, ...] = ()  # today's surges on what the filter names, in words (top of the email)

    @property
    def shown(self) -> int:
        return sum(len(s.items) for s in self.sections)

    @property
    def more(self) -> int:
        """Posts matched but not shown (collapsed ones count as shown)."""
        return max(0, self.total - self.covered)

    @property
    def new(self) -> int:
        """Stories: the posts matched, less the copies found among those read."""
        return self.total - (self.read - self.stories)

    @property
    def subject(self) -> str:
        return f"{self.new} new: {self.label}" if self.total else f"Nothing new: {self.label}"


def alert_line(name: str, count: int, baseline: float) -> str:
    """A surge in words: "Kyrgyzstan: 9 new stories today (usually 2)"."""
    return f"{name}: {count} new stor{'ies' if count != 1 else 'y'} today (usually {baseline:g})"


def filter_label(params: Mapping[str, object], labels: Labels) -> str:
    """The filter in words, in the order a reader thinks of it: places, topics, words."""
    parts = [labels.countries.get(c, c) for c in _list(params, "country")]
    parts += [labels.regions.get(r, r) for r in _list(params, "region")]
    parts += [labels.topics.get(t, t) for t in _list(params, "topic")]
    q = params.get("q")
    if isinstance(q, str) and q:
        parts.append(f"“{q}”")
    return " · ".join(parts) or "All countries and topics"


def _list(params: Mapping[str, object], name: str) -> list[str]:
    value = params.get(name) or []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def build_digest(posts: Sequence[WindowPost], params: Mapping[str, object], labels: Labels, *,
                 total: int, max_items: int) -> Digest:
    """`posts` newest first (the first rows of the window); `total` counts every match."""
    by_places = bool(_list(params, "country") or _list(params, "region"))
    grouped_by = "topic" if by_places else "country"
    stories = collapse(posts)
    shown = stories[:max_items]
    sections = group(shown, grouped_by, [*_list(params, "topic"), *_list(params, "country")], labels)
    return Digest(filter_label(params, labels), total, len(stories), sections, grouped_by,
                  sum(s.posts for s in shown), len(posts))


@dataclass(slots=True)
class _Story:
    lead: WindowPost
    words: frozenset[str]
    sources: set[int | None] = field(default_factory=set)
    also: list[str] = field(default_factory=list)
    posts: int = 1
    countries: list[str] = field(default_factory=list)  # of all its posts, the lead's first
    topics: list[str] = field(default_factory=list)

    def add_tags(self, post: WindowPost) -> None:
        for code in [*post.primary_countries, *post.countries]:
            if code not in self.countries:
                self.countries.append(code)
        self.topics.extend(t for t in post.topics if t not in self.topics)


def title_words(title: str) -> frozenset[str]:
    """The words of a title, without a trailing " - Source Name" that syndicated copies append."""
    stripped = _SUFFIX.sub("", title)
    if len(_WORD.findall(stripped)) < MIN_WORDS:
        stripped = title
    return frozenset(w.casefold() for w in _WORD.findall(stripped))


def same_story(a: frozenset[str], b: frozenset[str]) -> bool:
    return similar_titles(len(a & b), len(a), len(b))


def similar_titles(common: int, size_a: int, size_b: int) -> bool:
    """Two titles of `size_a` and `size_b` words sharing `common`: the same words, or a Jaccard
    similarity (common / (size_a + size_b - common)) of at least SIMILAR_TITLES when both are long
    enough. Counts, not sets, so the collapsing loop can use its word index."""
    if common == size_a == size_b:
        return common > 0
    if min(size_a, size_b) < MIN_WORDS:
        return False
    return common >= SIMILAR_TITLES * (size_a + size_b - common)


def collapse(posts: Sequence[WindowPost]) -> list[_Story]:
    """One item per story: a post joins the item of its story. A post without a story (stored
    before clustering) joins the earlier (newer) item of another source whose title names the same
    story; a source never collapses its own such posts. Title candidates come from an index of
    title words, so a digest's hundred posts cost a few hundred set lookups."""
    stories: list[_Story] = []
    index: dict[str, list[int]] = {}
    by_story: dict[int, _Story] = {}
    for post in posts:
        words = title_words(post.title)
        match = by_story.get(post.story_id) if post.story_id is not None else _best(stories, index, post, words)
        if match is None:
            story = _Story(post, words, {post.source_id})
            story.add_tags(post)
            _add_names(story, post.other_sources)
            if post.story_id is not None:
                by_story[post.story_id] = story
            else:
                for word in words:
                    index.setdefault(word, []).append(len(stories))
            stories.append(story)
            continue
        match.sources.add(post.source_id)
        match.posts += 1
        match.add_tags(post)
        _add_names(match, [post.source_name or "", *post.other_sources])
    return stories


def _best(stories: list[_Story], index: dict[str, list[int]], post: WindowPost,
          words: frozenset[str]) -> _Story | None:
    """The newest story sharing enough title words (counted through the index, so no set
    operations are needed)."""
    shared: dict[int, int] = {}
    for word in words:
        for i in index.get(word, ()):
            shared[i] = shared.get(i, 0) + 1
    size = len(words)
    for i in sorted(shared):
        story = stories[i]
        if similar_titles(shared[i], size, len(story.words)) and post.source_id not in story.sources:
            return story
    return None


def _add_names(story: _Story, names: Sequence[str]) -> None:
    for name in names:
        if name and name != story.lead.source_name and name not in story.also:
            story.also.append(name)


def group(stories: Sequence[_Story], by: str, preferred: Sequence[str], labels: Labels) -> tuple[Section, ...]:
    """Sections keyed by the story's first topic (or primary country), those the filter names first."""
    names = labels.topics if by == "topic" else labels.countries
    buckets: dict[str, list[_Story]] = {}
    for story in stories:
        codes = story.topics if by == "topic" else story.countries
        key = next((c for c in preferred if c in codes), None) or next(iter(codes), "")
        buckets.setdefault(key, []).append(story)
    other = "Other topics" if by == "topic" else "Other countries"
    ordered = sorted(buckets.items(), key=lambda kv: (kv[0] == "", -len(kv[1]), names.get(kv[0], kv[0])))
    return tuple(
        Section(names.get(key, key) if key else other,
                tuple(_item(s, labels) for s in sorted(members, key=lambda s: s.lead.published_at, reverse=True)))
        for key, members in ordered)


def _item(story: _Story, labels: Labels) -> Item:
    post = story.lead
    tags = [labels.countries.get(c, c) for c in story.countries[:MAX_TAGS]]
    tags += [labels.topics.get(t, t) for t in story.topics[:MAX_TAGS]]
    # A source without a name is shown by its URL, which may carry a key: masked as everywhere else.
    return Item(display_title(post.title, post.source_name), post.url, redact_text(post.source_name or ""),
                post.published_at, two_lines(post.summary), tuple(tags), tuple(redact_text(n) for n in story.also),
                post.date_estimated)


def display_title(title: str, source: str | None) -> str:
    """The title without a trailing " - Source Name" naming the source the item already shows."""
    match = _SUFFIX.search(title)
    if source and match and match.group(0).strip(" -|–—").casefold() == source.casefold():
        return title[: match.start()]
    return title


def two_lines(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The summary cut at a word boundary near `limit` characters (email clients cannot clamp lines)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:.-–— ")
    return f"{cut}…"
