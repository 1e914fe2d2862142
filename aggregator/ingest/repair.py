"""Repair of doubly-encoded text ("mojibake"): UTF-8 bytes decoded once too often as cp1252/latin-1.

A feed that declares UTF-8 but carries every Cyrillic string encoded twice reads «Ð’ ÐœÐ¾Ñ\x81ÐºÐ²Ðµ»
where it means «В Москве». The mistake is reversible, and ftfy is the well-kept library that reverses it
only where its own heuristics are sure the text is mojibake (real Latin-1 or Cyrillic text is left
alone); a hand-rolled `encode("cp1252").decode("utf-8")` would break every string that merely contains
an accented letter. The repair runs on the entry as feedparser read it, before normalizing: cutting a
summary or collapsing white space first would split the doubled byte sequences it has to undo.
Clean text costs one regex search per string.
"""

from __future__ import annotations

from typing import Any

import ftfy
from ftfy.badness import is_bad

_TEXT_FIELDS = ("title", "summary", "author")
_DETAIL_FIELDS = ("title_detail", "summary_detail", "author_detail")


def repair_text(value: str) -> str:
    """`value` with doubly-encoded UTF-8 undone; unchanged when it does not look like mojibake."""
    if not value or value.isascii() or not is_bad(value):
        return value
    return ftfy.fix_encoding(value)


def _repair_detail(detail: Any, key: str) -> tuple[Any, bool]:
    if not isinstance(detail, dict) or not isinstance(detail.get(key), str):
        return detail, False
    fixed = repair_text(detail[key])
    if fixed == detail[key]:
        return detail, False
    copy = type(detail)(detail)
    copy[key] = fixed
    return copy, True


def repair_entry(entry: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A feed entry (feedparser's shape) with mojibake repaired in its texts, and whether any was."""
    changes: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        value = entry.get(name)
        if isinstance(value, str) and (fixed := repair_text(value)) != value:
            changes[name] = fixed
    for name in _DETAIL_FIELDS:
        detail, changed = _repair_detail(entry.get(name), "value" if name != "author_detail" else "name")
        if changed:
            changes[name] = detail
    for name, key in (("content", "value"), ("tags", "term")):
        items = entry.get(name)
        if isinstance(items, list):
            repaired = [_repair_detail(item, key) for item in items]
            if any(changed for _, changed in repaired):
                changes[name] = [item for item, _ in repaired]
    if not changes:
        return entry, False
    copy = type(entry)(entry)
    copy.update(changes)
    return copy, True
