"""Text preparation before matching: blank out page clutter, find datelines.

Clutter (comment boilerplate, share buttons, "related stories" blocks, publisher appeals, web addresses) is
replaced by spaces rather than removed, so every offset in the prepared text is an offset in the original:
evidence must point at the words a reader sees.

Datelines matter for countries: a wire dateline ("ALMATY, Jan 6 (Reuters) -") names where the story
happens and counts; a blogger's home-town dateline in mixed case ("Staunton, Nov. 17 -") or an outlet's
location ("Brussels 06.01.2022") does not, unless the story itself is about that place.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_DATE = rf"(?:{_MONTH}\s+\d{{1,2}}|\d{{1,2}}\s+{_MONTH}|\d{{1,2}}[./]\d{{1,2}}[./]\d{{2,4}})(?:,?\s+\d{{4}})?"
_AGENCY = r"\([^()\n]{2,30}\)"
_DASH = r"(?:--|[-\u2013\u2014:])"
_CAPS_PLACE = r"[A-Z][A-Z'\u2019.\-]+(?:[ /][A-Z][A-Z'\u2019.\-]+){0,3}"
_MIXED_PLACE = r"[A-Z][a-z]+(?:[ \-][A-Z][a-z]+){0,2}"
_QUALIFIER = r"(?:,\s*[A-Z][\w.]*(?: [A-Z][\w.]*){0,2})?"

_WIRE = re.compile(
    rf"[ \t]*(?:By [^\n]{{3,60}}?\s)?(?P<d>{_CAPS_PLACE}{_QUALIFIER},?\s*(?:{_DATE}\s*)?(?:{_AGENCY}\s*)?{_DASH})"
)
_MIXED_WITH_AGENCY = re.compile(rf"[ \t]*(?P<d>{_MIXED_PLACE}{_QUALIFIER}\s*(?:{_DATE}\s*)?{_AGENCY}\s*{_DASH})")
_LINE = re.compile(r"[^\n]+")
DATELINE_WITHIN = 1500  # a dateline opens the story: only lines starting this early are considered
_MAX_CLUTTER_LINE = 300  # longer lines are prose, never clutter (and skipping them keeps this fast)
_SOFT = re.compile(rf"[ \t]*(?P<d>{_MIXED_PLACE},?\s+{_DATE}\b\s*{_DASH}?)")
_DATELINE_START = re.compile(r"[ \t]*[A-Z]")


class Dateline(NamedTuple):
    start: int
    end: int
    wire: bool


@dataclass(frozen=True, slots=True)
class ClutterRules:
    """Compiled boilerplate rules (from defaults/taxonomy/boilerplate.yaml)."""

    line: re.Pattern[str]
    heading: re.Pattern[str]
    heading_with_text: re.Pattern[str]
    appeal: re.Pattern[str]
    appeal_max_chars: int
    block_end_min_chars: int
    web_links: tuple[re.Pattern[str], ...]
    domain_ending: re.Pattern[str]


def compile_clutter(
    lines: Sequence[str],
    headings: Sequence[str],
    appeals: Sequence[str],
    domain_endings: Sequence[str],
    *,
    appeal_max_chars: int,
    block_end_min_chars: int,
) -> ClutterRules:
    heading = "(?:" + "|".join(headings) + ")"
    endings = "|".join(re.escape(e) for e in domain_endings)
    return ClutterRules(
        line=re.compile("(?:" + "|".join(lines) + r")[\s.!]*"),
        heading=re.compile(heading + r"\s*:?"),
        heading_with_text=re.compile(heading + r"\s*:\s*\S.*"),
        appeal=re.compile("|".join(re.escape(a.lower()) for a in appeals)),
        appeal_max_chars=appeal_max_chars,
        block_end_min_chars=block_end_min_chars,
        web_links=(re.compile(r"https?://\S+"), re.compile(r"www\.\S+")),
        domain_ending=re.compile(rf"\.(?:{endings})\b(?:/\S*)?"),
    )


def _address_spans(lowered: str, rules: ClutterRules) -> Iterator[tuple[int, int]]:
    """Web addresses; a bare domain ending ("Ferghana.Ru") is widened to the name before it."""
    for regex in rules.web_links:
        yield from (m.span() for m in regex.finditer(lowered))
    for m in rules.domain_ending.finditer(lowered):
        start = m.start()
        if start == 0 or not (lowered[start - 1].isalnum() or lowered[start - 1] in "-_"):
            continue
        while start > 0 and (lowered[start - 1].isalnum() or lowered[start - 1] in "-_."):
            start -= 1
        yield start, m.end()


def _clutter_spans(lowered: str, rules: ClutterRules) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    in_block = False
    for m in _LINE.finditer(lowered):
        line = m.group().strip()
        if not line:
            continue
        short = len(line) < rules.block_end_min_chars
        if in_block and short:
            spans.append(m.span())
            continue
        in_block = False
        if len(line) > _MAX_CLUTTER_LINE:
            continue
        if rules.heading.fullmatch(line):
            in_block = True
            spans.append(m.span())
        elif (
            rules.line.fullmatch(line)
            or rules.heading_with_text.fullmatch(line)
            or (len(line) < rules.appeal_max_chars and rules.appeal.search(line))
        ):
            spans.append(m.span())
    spans.extend(_address_spans(lowered, rules))
    return spans


def blank_clutter(text: str, lowered: str, rules: ClutterRules) -> tuple[str, str]:
    """`text` and its lowered form (see matcher.prepare) with clutter replaced by spaces; offsets kept."""
    spans = _clutter_spans(lowered, rules)
    if not spans:
        return text, lowered
    chars, low = list(text), list(lowered)
    for start, end in spans:
        chars[start:end] = low[start:end] = " " * (end - start)
    return "".join(chars), "".join(low)


def find_datelines(text: str) -> list[Dateline]:
    """Datelines at the start of a line (after an optional byline), in the opening of the text."""
    found = []
    for line in _LINE.finditer(text, 0, DATELINE_WITHIN):
        pos = line.start()
        if not _DATELINE_START.match(text, pos):
            continue
        for regex, wire in ((_WIRE, True), (_MIXED_WITH_AGENCY, True), (_SOFT, False)):
            m = regex.match(text, pos, line.end())
            if m:
                found.append(Dateline(m.start("d"), m.end("d"), wire))
                break
    return found
