"""One-pass phrase matching: thousands of phrases compiled into a single trie-shaped regular expression.

Why a trie and not `alias1|alias2|...`: Python's regex engine tries alternatives one by one, so a flat
alternation of ~10,000 aliases costs ~10,000 attempts at every word start. Factoring common prefixes
makes each position cost a few character comparisons, and the scan runs inside the C regex engine.

Matching is leftmost-longest and word-boundaried, on a lower-cased, accent-folded copy of the text of the
same length (so offsets carry over). Phrases are normalised the same way; in the text, words of a phrase
may be separated by spaces, hyphens, apostrophes or dots ("Nagorno-Karabakh", "U.S."). A trailing `*`
makes the last word a prefix ("terroris*"). Letter case is checked after the regex match, per phrase:
`ci` (any case), `cap` (the phrase's first capitalised word is capitalised in the text: "the Kremlin")
or `exact` (as written, or in capitals for phrases of four letters or more). Country aliases and topic
phrases share the one regex as separate layers: a match also reports the other layer's phrases inside it,
so "pro-Russian" is both a diplomacy phrase and a mention of Russia.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

WORD = re.compile(r"[^\W_]+")
_SEP = r"[\s\-\u2010\u2011\u2013'\u2019.]{1,3}"
_CASE_MODES = ("ci", "cap", "exact")


def _fold_char(ch: str) -> str:
    base = unicodedata.normalize("NFKD", ch)
    kept = "".join(c for c in base if not unicodedata.combining(c))
    return kept if len(kept) == 1 else ch


# Same-length accent folding, so that offsets in the folded text are offsets in the original.
_FOLD = {chr(cp): _fold_char(chr(cp)) for cp in range(0xC0, 0x250) if _fold_char(chr(cp)) != chr(cp)}
_FOLD["\u0130"] = "I"
_FOLD.update({"\u0451": "\u0435", "\u0401": "\u0415"})  # ё -> е: Russian writes either
_FOLD_RE = re.compile("[" + "".join(_FOLD) + "]")


def fold(text: str) -> str:
    """Accents removed, length kept ("Türkiye" -> "Turkiye")."""
    return text if text.isascii() else _FOLD_RE.sub(lambda m: _FOLD[m.group()], text)


def prepare(text: str) -> str:
    """The form `PhraseIndex.scan` searches: folded and lower-cased, same length as `text`."""
    lowered = fold(text).lower()
    if len(lowered) != len(text):  # a character whose lower case is longer; keep offsets aligned
        lowered = "".join(c if len(c) == 1 else "?" for c in (ch.lower() for ch in fold(text)))
    return lowered


def normalize(phrase: str) -> str:
    """The lookup key of a phrase or of matched text: folded lower-case words joined by spaces."""
    return " ".join(WORD.findall(fold(phrase).lower()))


@dataclass(frozen=True, slots=True)
class Phrase:
    """One phrase to find, with what it means (`payload`, opaque to the matcher).

    Phrases of different `layer`s do not compete: a country alias and a topic phrase over the same words
    are both reported ("Armed Forces of Ukraine" is UA and also "armed forces").
    """

    text: str
    case: str
    payload: object
    layer: int = 0


class Match(NamedTuple):
    start: int
    end: int
    payloads: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    """A phrase with its case rule precomputed: the words as written, and which word must be capitalised."""

    case: str
    words: tuple[str, ...]
    cap_index: int
    short: bool
    payload: object
    layer: int


def _entry(phrase: Phrase) -> _Entry:
    words = tuple(WORD.findall(fold(phrase.text)))
    cap_index = next((i for i, w in enumerate(words) if w[:1].isupper()), -1)
    return _Entry(phrase.case, words, cap_index, len(phrase.text.rstrip("*")) < 4, phrase.payload, phrase.layer)


def case_ok(surface: str, entry: _Entry) -> bool:
    """Whether the matched text has the letter case the phrase requires."""
    if entry.case == "ci" or (entry.case == "cap" and entry.cap_index <= 0 and surface[:1].isupper()):
        return True
    if entry.case == "exact" and len(entry.words) == 1 and not entry.short and surface.isupper():
        return True
    got = WORD.findall(fold(surface))
    if len(got) != len(entry.words):
        return False
    if entry.case == "cap":
        return entry.cap_index < 0 or got[entry.cap_index][:1].isupper()
    if got[:-1] == list(entry.words[:-1]) and got[-1].startswith(entry.words[-1]):
        return True
    return not entry.short and surface.isupper()


def _render(keys: list[str], ends: Container[str], stems: Container[str], depth: int = 0) -> str:
    """Regex of the trie of `keys` (sorted, all sharing their first `depth` characters); longer
    continuations are tried before stopping here. The trie is walked over the sorted list itself rather
    than built as node objects: a node per character of 10,000 phrases is 200,000 small objects, whose
    freed memory the process would keep."""
    end = stem = False
    alts = []
    i = 0
    while i < len(keys):
        key = keys[i]
        if len(key) == depth:
            end, stem = key in ends, key in stems
            i += 1
            continue
        ch = key[depth]
        j = i + 1
        while j < len(keys) and len(keys[j]) > depth and keys[j][depth] == ch:
            j += 1
        atom = _SEP if ch == " " else re.escape(ch)
        alts.append(atom + _render(keys[i:j], ends, stems, depth + 1))
        i = j
    if stem:
        alts.append(r"\w*")
    if not alts:
        return ""
    body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    if end:
        return ("(?:" + body + ")?") if len(alts) > 1 or len(body) > 1 else body + "?"
    return body


_Split = tuple[tuple[object, ...], tuple[_Entry, ...], tuple[object, ...] | None]
_Inner = tuple[int, int, tuple[object, ...], tuple[_Entry, ...], tuple[object, ...] | None]


class PhraseIndex:
    """All phrases compiled into one regex; `scan` finds leftmost-longest matches per layer.

    One scan serves every layer: when a phrase matches, the phrases of *other* layers that lie inside it
    (found once, at build time) are reported too, with their own offsets.
    """

    def __init__(self, phrases: Iterable[Phrase]):
        exact: dict[str, list[_Entry]] = {}
        stems: dict[str, list[_Entry]] = {}
        layers: dict[str, set[int]] = {}
        for phrase in phrases:
            key, stem = _key(phrase)
            (stems if stem else exact).setdefault(key, []).append(_entry(phrase))
            layers.setdefault(key, set()).add(phrase.layer)
        self._exact = {k: (*_split(v), _inners(k, layers[k], exact, stems)) for k, v in exact.items()}
        self._stems = {k: (*_split(v), ()) for k, v in stems.items()}
        self._stem_lengths = sorted({len(k) for k in stems}, reverse=True)
        keys = sorted(exact.keys() | stems.keys())
        self._regex = re.compile(r"\b(?:" + (_render(keys, exact, stems) or r"(?!)") + r")\b")

    def _lookup(self, key: str) -> tuple[tuple[object, ...], tuple[_Entry, ...], tuple[object, ...] | None,
                                         tuple[_Inner, ...]]:
        """Entries of a normalised matched key: exact phrases first, else the longest prefix phrase."""
        found = self._exact.get(key)
        if found is not None or not self._stems:
            return found or _NOTHING
        shortest = key.rfind(" ") + 4  # a prefix keeps at least three letters of the last word
        for length in self._stem_lengths:
            if length > len(key) or length < shortest:
                continue
            found = self._stems.get(key[:length])
            if found is not None:
                return found
        return _NOTHING

    def scan(self, text: str, prepared: str | None = None) -> list[Match]:
        """Matches in `text`, in order of start; pass `prepare(text)` if you already have it."""
        lowered = prepare(text) if prepared is None else prepared
        matches = []
        exact, lookup, sorted_ = self._exact, self._lookup, True
        for m in self._regex.finditer(lowered):
            key = m.group()
            found = exact.get(key) if key.isalnum() else None
            payloads, checked, capital, inners = found if found is not None else lookup(" ".join(WORD.findall(key)))
            start, end = m.span()
            if capital is not None:
                if text[start].isupper():
                    payloads += capital
            elif checked:
                payloads = _case_checked(text, start, end, payloads, checked)
            if payloads:
                matches.append(Match(start, end, payloads))
            if inners:
                sorted_ = False
                matches.extend(_inner_matches(text, lowered, start, end, inners))
        if not sorted_:
            matches.sort(key=lambda x: x.start)
        return matches


def _inner_matches(text: str, lowered: str, start: int, end: int, inners: tuple[_Inner, ...]) -> Iterator[Match]:
    words = [w.span() for w in WORD.finditer(lowered, start, end)]
    for i, j, payloads, checked, _ in inners:
        s, e = words[i][0], words[j - 1][1]
        found = _case_checked(text, s, e, payloads, checked)
        if found:
            yield Match(s, e, found)


_NOTHING: tuple[tuple[object, ...], tuple[_Entry, ...], None, tuple[_Inner, ...]] = ((), (), None, ())


def _case_checked(text: str, start: int, end: int, payloads: tuple[object, ...],
                  checked: tuple[_Entry, ...]) -> tuple[object, ...]:
    surface = text[start:end]
    return payloads + tuple(e.payload for e in checked if case_ok(surface, e))


def _key(phrase: Phrase) -> tuple[str, bool]:
    if phrase.case not in _CASE_MODES:
        raise ValueError(f"unknown case mode {phrase.case!r} for phrase {phrase.text!r}")
    stem = phrase.text.endswith("*")
    key = normalize(phrase.text)
    if not key:
        raise ValueError(f"phrase {phrase.text!r} has no letters or digits")
    if stem and len(key.rsplit(" ", 1)[-1]) < 3:
        raise ValueError(f"prefix phrase {phrase.text!r} needs at least 3 letters before '*'")
    return key, stem


def _split(entries: list[_Entry]) -> _Split:
    """(payloads matching in any case, entries to case-check, and -- when every checked entry only needs
    a capital first letter -- their payloads, so the common case costs one `isupper`)."""
    checked = tuple(e for e in entries if e.case != "ci")
    simple = all(e.case == "cap" and e.cap_index <= 0 for e in checked)
    return (tuple(e.payload for e in entries if e.case == "ci"), checked,
            tuple(e.payload for e in checked) if checked and simple else None)


def _inners(key: str, own: set[int], exact: dict[str, list[_Entry]],
            stems: dict[str, list[_Entry]]) -> tuple[_Inner, ...]:
    """Phrases of other layers inside `key`, as (first word, end word, payloads, entries to case-check)."""
    words = key.split(" ")
    inners = []
    for i in range(len(words)):
        for j in range(i + 1, len(words) + 1):
            if j - i == len(words):
                continue
            sub = " ".join(words[i:j])
            for table, candidates in ((exact, [sub]), (stems, _stem_keys(words[i:j]))):
                for cand in candidates:
                    entries = [e for e in table.get(cand, ()) if e.layer not in own]
                    if entries:
                        inners.append((i, j, *_split(entries)))
    return tuple(inners)


def _stem_keys(words: list[str]) -> list[str]:
    head = " ".join(words[:-1])
    last = words[-1]
    return [(head + " " if head else "") + last[:n] for n in range(3, len(last) + 1)]
