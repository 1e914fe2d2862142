"""Marking text for the reader: tag evidence by its offsets, search matches by sentinels. Pure.

Both return Markup built from escaped pieces only: the text is someone else's and is escaped
here, and the only tags added are our own <mark> elements.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from markupsafe import Markup, escape

# ts_headline is told to wrap matches in these (they cannot occur in stored text: clean_text drops
# control characters), so its output can be escaped first and marked after.
START, STOP = "\x02", "\x03"


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


def mark_sentinels(marked: str) -> Markup:
    """Text in which START…STOP surround matches (from ts_headline) as escaped HTML with <mark>s."""
    return Markup(str(escape(marked)).replace(START, "<mark>").replace(STOP, "</mark>"))


def strip_sentinels(marked: str) -> str:
    return marked.replace(START, "").replace(STOP, "")
