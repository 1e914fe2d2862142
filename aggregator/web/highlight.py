"""Marking text for the reader: tag evidence by its offsets, a search's matching words. Pure.

Both return Markup built from escaped pieces only: the text is someone else's and is escaped
here, and the only tags added are our own <mark> elements.

Which words a search matches is PostgreSQL's to say (aggregator.db.headlines), as its search found
them: here are only the pieces of text it is asked about, and their marking. PostgreSQL's parser
never reads a word across white space, so the text is cut there, and a piece (a word, or a word
with its punctuation, or a host name or a hyphenated compound) is marked as ts_headline marks it.
A piece is asked about only when one of its words begins as one of the search's words does: the
stemmers PostgreSQL searches with (Snowball's English and Russian, and 'simple', which only lowers
the case) keep a word's first letter, reading 'ё' as 'е'. So a page's thirty posts, some 1,650
words, come down to a few dozen pieces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from markupsafe import Markup, escape

from aggregator.db.headlines import START, STOP

WORD = re.compile(r"[^\W_]+")  # letters and digits, as PostgreSQL's parser reads a word's parts
PIECE = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str  # what the mark stands for, shown on hover and read by screen readers


def mark_spans(text: str, spans: Iterable[Span]) -> Markup:
    """`text` with each span wrapped in <mark>; overlapping spans merge, out-of-range ones are dropped."""
    out, at = [], 0
    for start, end, label in _merged(spans, len(text)):
        out.append(escape(text[at:start]))
        out.append(Markup('<mark title="{}">{}</mark>').format(label, text[start:end]))
        at = end
    out.append(escape(text[at:]))
    return Markup("").join(out)


def _merged(spans: Iterable[Span], length: int) -> list[tuple[int, int, str]]:
    merged: list[tuple[int, int, str]] = []
    for span in sorted((s for s in spans if 0 <= s.start < s.end <= length), key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1][1]:
            start, end, label = merged[-1]
            labels = label.split(", ")
            merged[-1] = (start, max(end, span.end), label if span.label in labels else f"{label}, {span.label}")
        else:
            merged.append((span.start, span.end, span.label))
    return merged


def word_starts(q: str) -> re.Pattern[str] | None:
    """Where, in a text, a word begins with the first letter of one of the search's words (in
    either case, 'ё' and 'е' alike); None when the search has no word."""
    letters = {w[:1].lower() for w in WORD.findall(q)}
    if letters & {"е", "ё"}:
        letters |= {"е", "ё"}
    if not letters:
        return None
    # the letter first, then what precedes it: a search for the letter is quick, a look behind every
    # character of the text is not (0.1 against 0.2 ms a page)
    return re.compile("[" + re.escape("".join(sorted(letters))) + r"](?<![^\W_].)", re.IGNORECASE)


def pieces(starts: re.Pattern[str] | None, text: str) -> list[tuple[int, int]]:
    """The spans of `text`'s pieces (runs of non-space) holding a word that `starts` finds, in order."""
    spans: list[tuple[int, int]] = []
    if starts is None:
        return spans
    end = 0
    for found in starts.finditer(text):
        at = found.start()
        if at < end:  # another word of the piece just taken
            continue
        begin = at
        while begin > end and not text[begin - 1].isspace():
            begin -= 1
        end = PIECE.match(text, at).end()  # type: ignore[union-attr]  # `at` is a letter or digit
        spans.append((begin, end))
    return spans


def mark_pieces(text: str, lang: str | None, spans: Iterable[tuple[int, int]],
                marked: Mapping[tuple[str, str | None], str]) -> Markup | str:
    """`text` (of a post in `lang`) with those of its pieces at `spans` that the search matched
    (`marked`: (piece, language) -> the piece with START and STOP around its matches) shown with
    <mark>; the text as it is when none was."""
    out: list[str] = []
    at = 0
    for begin, end in spans:
        shown = marked.get((text[begin:end], lang))
        if shown is not None:
            out.append(escape(text[at:begin]))
            out.append(str(escape(shown)).replace(START, "<mark>").replace(STOP, "</mark>"))
            at = end
    if not out:
        return text
    out.append(escape(text[at:]))
    return Markup("".join(out))
