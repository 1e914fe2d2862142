"""Which story a new post belongs to. Pure: features and the active stories in, a decision out.

A post is compared with the posts of the stories still active (whose last post is at most the window
before it): a near-identical copy (MinHash estimate of shingle overlap ≥ `duplicate`) joins at once;
otherwise the similarity of two posts is a weighted sum of what each signal says:

- content: cosine of the word-key counts (same language: real word overlap; across languages only
  names and loanwords survive, so it is small but not zero),
- names: people, organisations and places the gazetteer does not know, as transliteration keys,
- numbers (casualty counts, percentages) and day-month dates named in both,
- countries and places the tagger found (overlap), and a penalty when both name places below the
  country and they share none (two attacks in two North Caucasus republics on one day).

A story's score is its best member's; the post joins the best story at or above `threshold`. When it
matches more than one story, those stories were one event all along: the oldest survives and the
others merge into it. Tiny posts never join and are never joined (they would match by accident).

`StoryIndex` keeps the active stories of a window in memory with an inverted index over the rare
keys (names, places, numbers, MinHash bands), so a post is compared with the few stories that share
one of them, not with every post of the window. Country and topic keys are too common to be index
keys; they only weigh in the score.
"""

from __future__ import annotations

import math
import operator
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

import numpy as np

from aggregator.stories.features import MINHASH_SIZE, PostFeatures, near_copy

BANDS = 16  # MinHash bands for near-duplicate candidates (4 rows each)
BAND_KEY = "b"  # what every band's index key starts with (and no other key)
DUPLICATE_SCORE = 9.0  # a near-identical copy joins whatever its similarity would say
MAX_CANDIDATES = 24  # members compared in full per post, the ones sharing most keys
# Postings (a member per key it shares) from which counting and ranking on arrays is cheaper than a
# Counter and two sorts: numpy's calls cost some 15 µs whatever the size, a Counter ~0.1 µs a posting.
ARRAY_RANKING_FROM = 128


@dataclass(frozen=True, slots=True)
class Params:
    """Weights of the similarity and the decision thresholds (see the module docstring)."""

    window: timedelta = timedelta(hours=72)
    threshold: float = 0.5
    duplicate: float = 0.8
    content: float = 1.0
    names: float = 0.06  # per shared name key, up to `max_names`
    max_names: int = 5
    numbers: float = 0.1  # per shared number, up to two
    dates: float = 0.1  # per shared day-month date, up to two
    countries: float = 0.25  # × overlap coefficient of the country sets
    places: float = 0.15  # per shared place, up to two
    place_conflict: float = 0.5  # both name places, none shared


@dataclass(frozen=True, slots=True)
class Decision:
    """`story` is the story the post joins (None: it starts one); `merge` the stories merged into it."""

    story: int | None
    merge: tuple[int, ...] = ()
    score: float = 0.0
    reason: str = "new"  # new | tiny | duplicate | similar


def _cosine(a: PostFeatures, b: PostFeatures) -> float:
    if not a.norm or not b.norm:
        return 0.0
    x, y = a.words, b.words
    shared = x.keys() & y.keys()  # the few shared words, found in C; their products summed in C too
    dot = sum(map(operator.mul, map(x.__getitem__, shared), map(y.__getitem__, shared)))
    return dot / (a.norm * b.norm)


def similarity(a: PostFeatures, b: PostFeatures, p: Params) -> float:
    """How likely two posts report the same event (roughly 0..2; `threshold` decides)."""
    shared_places = a.places & b.places
    countries_a, countries_b = a.countries, b.countries
    # overlap coefficient of the country sets; -1 when either has none (no conflict then)
    shared_countries = len(countries_a & countries_b) if countries_a and countries_b else -1
    score = (p.content * _cosine(a, b)
             + p.names * min(len(a.names & b.names), p.max_names)
             + p.numbers * min(len(a.numbers & b.numbers), 2)
             + p.dates * min(len(a.dates & b.dates), 2)
             + p.countries * (shared_countries / min(len(countries_a), len(countries_b))
                              if shared_countries > 0 else 0.0)
             + p.places * min(len(shared_places), 2))
    if a.places and b.places and not shared_places:
        score -= p.place_conflict
    if shared_countries == 0:
        score -= p.place_conflict
    return score


def index_keys(f: PostFeatures) -> Iterator[str]:
    """The rare keys a post is found by: names, places, numbers, dates and MinHash bands (numbers
    and dates matter: two reports in two languages often share no name key but a death toll)."""
    yield from (f"n:{k}" for k in f.names)
    yield from (f"p:{k}" for k in f.places)
    yield from (f"#:{k}" for k in f.numbers)
    yield from (f"d:{m}-{d}" for m, d in f.dates)
    if f.minhash:
        rows = len(f.minhash) // BANDS
        prefix = BAND_KEY if f.scheme == 1 else f"{BAND_KEY}{f.scheme}."  # bands of two schemes never meet
        for band in range(BANDS):
            yield f"{prefix}{band}:{hash(f.minhash[band * rows:(band + 1) * rows]) & 0xFFFFFFFF:x}"


def _filed_keys(features: PostFeatures) -> tuple[str, ...]:
    """The keys a member is found by: none for a tiny post, which never joins and is not worth
    finding (a feed of a thousand "Item n" posts)."""
    return () if features.tiny else tuple(index_keys(features))


@dataclass(frozen=True, slots=True)
class Candidate:
    """An active post the new one is compared with: its story, when that story began, its features."""

    story: int
    story_first: datetime
    features: PostFeatures
    may_copy: bool = True  # False: shares too few MinHash bands with the post to be a near copy of it


def bands_for_copy(params: Params, size: int = MINHASH_SIZE) -> int:
    """The fewest MinHash bands a post shares with any near copy of it (0: no bound).

    A near copy agrees on at least `duplicate` of the signature's minimums, so it disagrees on at most
    the rest; each disagreement spoils at most one band, so the other bands match whole, and equal
    bands give equal index keys. A candidate that shares fewer band keys cannot be a near copy, and
    its signature need not be compared. (With a size that is not a multiple of BANDS, positions past
    the last band spoil none, so the bound still holds.)"""
    disagree = size - math.ceil(params.duplicate * size - 1e-9)
    return max(0, BANDS - disagree)


def choose(features: PostFeatures, candidates: Iterable[Candidate], params: Params) -> Decision:
    """The decision for a post given the active posts that share a rare key with it (best first).

    The one decision rule: `StoryIndex.decide` calls it for evaluation, ingest (each worker's window)
    and recluster alike."""
    if features.tiny:
        return Decision(None, reason="tiny")
    best: dict[int, float] = {}
    first: dict[int, datetime] = {}
    duplicate = False
    for c in candidates:
        # A story this post is a copy of already has the highest score there is (a similarity is at
        # most ~2.3): its other members can change nothing. An agency's text carried by ten outlets
        # had each new copy compared in full with all the others.
        if c.features.tiny or best.get(c.story) == DUPLICATE_SCORE:
            continue
        if c.may_copy and near_copy(features, c.features) >= params.duplicate:
            duplicate, score = True, DUPLICATE_SCORE
        else:
            score = similarity(features, c.features, params)
        if score >= params.threshold and score > best.get(c.story, -1.0):
            best[c.story] = score
            first[c.story] = c.story_first
    if not best:
        return Decision(None)
    oldest = min(best, key=lambda s: (first[s], s))
    return Decision(oldest, merge=tuple(sorted(s for s in best if s != oldest)), score=round(best[oldest], 3),
                    reason="duplicate" if duplicate else "similar")


@dataclass(slots=True)
class _Member:
    post: int
    story: int
    features: PostFeatures
    at: datetime
    keys: tuple[str, ...]  # its index keys, kept to unindex it when it expires


@dataclass(slots=True)
class StoryIndex:
    """The active stories of one window, in memory; `add` decides and records a post's story.

    What a post is compared with depends only on the sequence of posts recorded before it, so two
    indexes fed the same sequence (a worker's, synchronized from the database, and recluster's
    replay) decide alike: the members within the window of the post's own date and no older than
    the window before the newest date recorded so far (`newest`: dates are clamped to their
    arrival, so this is never ahead of the clock). Memory is bounded by the window: members older
    than it are dropped as later posts arrive. New story ids are the caller's (`add(new_story=)`:
    the post's own id in evaluation)."""

    params: Params = field(default_factory=Params)
    members: dict[int, _Member] = field(default_factory=dict)
    # key -> the member posts that have it: a bare post id while only one has it (most MinHash band
    # keys, ~15 of a post's ~25 keys: a set for each was a third of the window's memory)
    by_key: dict[str, int | set[int]] = field(default_factory=dict)
    story_first: dict[int, datetime] = field(default_factory=dict)
    story_members: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    order: list[int] = field(default_factory=list)  # member posts in arrival order (for expiry)
    expired: int = 0  # how far `order` has been expired
    newest: datetime | None = None  # the latest date recorded
    copy_bands: int = field(init=False)  # bands_for_copy(params): fewer shared, a candidate is no copy

    def __post_init__(self) -> None:
        self.copy_bands = bands_for_copy(self.params)

    def horizon(self, at: datetime) -> datetime:
        """The oldest date a member may have to be compared with a post dated `at`."""
        latest = at if self.newest is None or at > self.newest else self.newest
        return latest - self.params.window

    def _expire(self, now: datetime) -> None:
        horizon = now - self.params.window
        while self.expired < len(self.order):
            member = self.members.get(self.order[self.expired])
            if member is not None and member.at >= horizon:
                break
            self.expired += 1
            if member is not None:
                self._forget(member)
        if self.expired > 1024 and self.expired * 2 > len(self.order):
            del self.order[: self.expired]
            self.expired = 0

    def _forget(self, member: _Member) -> None:
        del self.members[member.post]
        by_key = self.by_key
        for key in member.keys:
            posts = by_key.get(key)
            if posts is None:
                continue
            if type(posts) is int:
                if posts == member.post:
                    del by_key[key]
                continue
            posts.discard(member.post)
            if len(posts) == 1:
                by_key[key] = next(iter(posts))
        left = self.story_members.get(member.story)
        if left is not None:
            left.discard(member.post)
            if not left:
                del self.story_members[member.story]
                self.story_first.pop(member.story, None)

    def candidates(self, features: PostFeatures, at: datetime | None = None,
                   keys: Iterable[str] | None = None, bands: Counter[int] | None = None) -> list[_Member]:
        """Active members sharing the most rare keys with the post, best first, ties by post id
        (within the window of `at` when given: a member left over from lazy expiry is never a
        candidate).

        A busy window has hundreds of members sharing one common number with a post (some 600
        postings a post in the benchmark's window), so beyond ARRAY_RANKING_FROM postings the
        counting and ranking are done on arrays: the postings are copied out of their sets, `unique`
        counts them (sorted by post id), and a stable sort by count descending keeps ties by post
        id. Counting them into a `Counter` cost about three times as much there, mostly its hash
        table's inserts; below, a Counter and two stable sorts are cheaper than numpy's calls. The
        window is checked only on the members taken. `keys`: the post's index keys, when the caller
        has them already. `bands`: counts, for each member found, the MinHash band keys it shares
        (see `bands_for_copy`)."""
        by_key = self.by_key
        singles: list[int] = []
        held: list[set[int]] = []
        for key in index_keys(features) if keys is None else keys:
            posts = by_key.get(key)
            if posts is None:
                continue
            if type(posts) is int:
                singles.append(posts)
            else:
                held.append(posts)
            if bands is not None and key[0] == BAND_KEY:
                bands.update((posts,) if type(posts) is int else posts)
        ranked: Iterable[int]
        if len(singles) + sum(map(len, held)) < ARRAY_RANKING_FROM:
            shared = Counter(singles)
            for posts in held:
                shared.update(posts)
            ranked = sorted(sorted(shared), key=shared.__getitem__, reverse=True)  # reverse keeps stability
        else:
            postings = [np.fromiter(posts, np.int64, len(posts)) for posts in held]
            postings.append(np.array(singles, np.int64))
            found, counts = np.unique(np.concatenate(postings), return_counts=True)
            ranked = found[np.argsort(-counts, kind="stable")].tolist()
        members = self.members
        if at is None:
            return [members[post] for post in islice(ranked, MAX_CANDIDATES)]
        low, high = max(self.horizon(at), at - self.params.window), at + self.params.window
        taken: list[_Member] = []
        for post in ranked:
            member = members[post]
            if low <= member.at <= high:
                taken.append(member)
                if len(taken) == MAX_CANDIDATES:
                    break
        return taken

    def decide(self, features: PostFeatures, at: datetime, keys: Iterable[str] | None = None) -> Decision:
        """The story a post joins (without recording it)."""
        self._expire(self.horizon(at) + self.params.window)
        if features.tiny:  # joins nothing (choose would say so after looking)
            return Decision(None, reason="tiny")
        bands: Counter[int] = Counter()
        members = self.candidates(features, at, keys, bands)
        need = self.copy_bands
        found = [Candidate(m.story, self.story_first[m.story], m.features, bands[m.post] >= need) for m in members]
        return choose(features, found, self.params)

    def record(self, post: int, story: int, features: PostFeatures | None, at: datetime,
               merged: Iterable[int] = (), story_first: datetime | None = None,
               keys: tuple[str, ...] | None = None) -> None:
        """Put a post into a story (after `decide`, or replaying a stored assignment, with the
        stories it merged). Without features (a worker reading back its own assignments, recorded
        already) only the merges are replayed. `story_first`: when the story began, if before this
        post (a window loaded from the database, whose older posts are not in memory). `keys`: its
        index keys, when the caller has them already."""
        for other in merged:
            self.move(other, story)
        if self.newest is None or at > self.newest:
            self.newest = at
        if features is None or post in self.members:
            return
        first = at if story_first is None or at < story_first else story_first
        if at < self.newest - self.params.window:
            # Older than the window of the newest post, it can never be a candidate (candidates are
            # no older than that, and the newest date only grows): only when its story began is
            # kept, if the story has members. An archive's first poll leaves no dead weight.
            if story in self.story_members:
                self.story_first[story] = min(self.story_first.get(story, first), first)
            return
        self.story_first[story] = min(self.story_first.get(story, first), first)
        if keys is None:
            keys = _filed_keys(features)
        member = _Member(post, story, features, at, keys)
        self.members[post] = member
        self.story_members[story].add(post)
        self.order.append(post)
        by_key = self.by_key
        for key in keys:
            posts = by_key.get(key)
            if posts is None:
                by_key[key] = post
            elif type(posts) is int:
                by_key[key] = {posts, post}
            else:
                posts.add(post)

    def move(self, story: int, into: int) -> None:
        """Every member of `story` joins `into` (a merge, or a story id given its final value)."""
        if story == into:
            return
        moved = self.story_members.pop(story, set())
        for post in moved:
            self.members[post].story = into
        if moved:
            self.story_members[into].update(moved)
        first = self.story_first.pop(story, None)
        if first is not None:
            self.story_first[into] = min(self.story_first.get(into, first), first)

    def add(self, post: int, features: PostFeatures, at: datetime,
            new_story: int | None = None) -> tuple[int, Decision]:
        """Decide and record: the post's story id (`new_story`, else its own id, when it starts one)
        and the decision."""
        keys = _filed_keys(features)  # once, for finding and filing
        decision = self.decide(features, at, keys)
        story = decision.story if decision.story is not None else new_story if new_story is not None else post
        self.record(post, story, features, at, decision.merge, keys=keys)
        return story, decision
