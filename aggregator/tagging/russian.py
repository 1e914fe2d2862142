"""Russian inflection of gazetteer entries: a base form in, every case form a text may use out.

Russian nouns and adjectives change their endings with case and number (Казахстан, Казахстана,
Казахстане, Казахстаном; Ферганская долина, Ферганской долины). Stemming the text would blur names into
common words, so instead the taxonomy lists base forms and this module generates their forms with the
OpenCorpora dictionary (pymorphy3) when the taxonomy is built. What the dictionary does not know stays as
written, so acronyms and rare names (ОДКБ, ИГИЛ, Хорасан) are listed by hand with the forms they need.

Multiword names inflect with agreement: the adjectives before the head noun take its gender, number and
case ("Северная Осетия" -> "Северной Осетии"); words after the head stay as written ("Республика
Казахстан" -> "Республики Казахстан"). A trailing `!` on an entry means "exactly as written, no forms".

The forms are kept in `ru/forms.json` beside the entries (written by `aggregator taxonomy-forms`), so a
process that loads the taxonomy reads them instead of loading the dictionary; a test fails when the
file is out of date.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from aggregator.errors import ConfigError

CASES = ("nomn", "gent", "datv", "accs", "ablt", "loct")
NUMBERS = ("sing", "plur")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
# Masculine surnames in -ов/-ев/-ин decline like short adjectives; the dictionary misreads many of
# them (Жапаров as a genitive plural), so they follow the rule when no surname reading is known.
_SURNAME = re.compile(r"(?:[оеё]в|[иы]н)$")
_SURNAME_ENDINGS = ("", "а", "у", "ым", "е", "а", "ой", "у")  # masculine cases, then feminine -а -ой -у
_FEMININE_SURNAME = re.compile(r"(?:[оеё]в|[иы]н)а$")
_CONSONANTS = frozenset("бвгджзклмнпрстфхцчшщ")
_PARSE_TAGS = ("Surn", "Geox", "Name", "Orgn", "Abbr")
LITERAL = "!"


def dictionary_version() -> str:
    """Part of the taxonomy's version: other dictionary data can give other forms."""
    try:
        return package_version("pymorphy3-dicts-ru")
    except PackageNotFoundError:
        return "none"


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    import pymorphy3  # imported here: only taxonomy building needs it

    return pymorphy3.MorphAnalyzer(lang="ru")


def release() -> None:
    """Drop the dictionary after building: a parse process should not carry it."""
    _analyzer.cache_clear()


def _match_case(form: str, model: str) -> str:
    """`form` written with the capitals of `model` (first letter of each hyphen part, or all capitals)."""
    if model.isupper() and len(model) > 1:
        return form.upper()
    parts, model_parts = form.split("-"), model.split("-")
    if len(parts) != len(model_parts):
        return form[:1].upper() + form[1:] if model[:1].isupper() else form
    return "-".join(p[:1].upper() + p[1:] if m[:1].isupper() else p for p, m in zip(parts, model_parts, strict=True))


def _base_parse(word: str, pos: tuple[str, ...], *, lemma: bool = True) -> Any | None:
    """The dictionary reading of `word` as a nominative base form of one of `pos`, the likeliest first,
    preferring proper-noun readings; None when the dictionary has no such reading. `lemma=False` accepts
    any nominative (a modifier such as "Ферганская" is not its own dictionary form)."""
    lowered = word.lower().replace("ё", "е")
    candidates = [p for p in _analyzer().parse(word)
                  if p.tag.POS in pos and p.tag.case == "nomn"
                  and (not lemma or p.normal_form.replace("ё", "е") == lowered)]
    if not candidates:
        candidates = [p for p in _analyzer().parse(word)
                      if p.tag.POS in pos and p.tag.case == "nomn" and p.tag.number == "plur"
                      and p.inflect({"plur", "nomn"}) is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (any(t in p.tag for t in _PARSE_TAGS), p.score))


def _surname_forms(word: str) -> list[str]:
    """Forms of a surname the dictionary does not know, by its ending (Жапаров, Захарова, Пашинян)."""
    lowered = word.lower()
    if _SURNAME.search(lowered):
        return [word + e for e in _SURNAME_ENDINGS]
    if _FEMININE_SURNAME.search(lowered):
        return [word, word[:-1] + "ой", word[:-1] + "у"]
    if lowered[-1:] in _CONSONANTS:
        return [word + e for e in ("", "а", "у", "ом", "е")]
    return [word]


def word_forms(word: str, *, surname: bool = False) -> list[str]:
    """Every case form of one word (both numbers unless the word has only one), capitals kept."""
    if not _CYRILLIC.search(word) or (word.isupper() and len(word) > 1):
        return [word]
    if "-" in word.strip("-"):  # Джалал-Абад, Кабардино-Балкария: the last part inflects
        prefix, last = word.rsplit("-", 1)
        return sorted({f"{prefix}-{form}" for form in word_forms(last, surname=surname)})
    parse = _base_parse(word, ("NOUN", "ADJF"))
    if surname and (parse is None or "Surn" not in parse.tag):
        return _surname_forms(word)
    if parse is None:
        return [word]
    forms = {word}
    for form in parse.lexeme:
        if form.tag.POS != parse.tag.POS or (parse.tag.POS == "ADJF" and "Cmp2" in form.tag):
            continue
        if "Surn" in parse.tag and form.tag.gender not in (None, parse.tag.gender) and form.tag.number == "sing":
            continue
        forms.add(_match_case(form.word, word))
    return sorted(forms)


def _head(words: list[str]) -> int:
    """Index of the phrase's head noun: the first word that reads as a noun (else the last word)."""
    for i, w in enumerate(words):
        if _CYRILLIC.search(w) and _base_parse(w, ("NOUN",)) is not None and not (w.isupper() and len(w) > 1):
            return i
    return len(words) - 1


def _modifier(word: str) -> Any | None:
    if not _CYRILLIC.search(word):
        return None
    last = word.rsplit("-", 1)[-1]
    return _base_parse(last, ("ADJF",), lemma=False)


def _inflected_modifier(word: str, parse: Any | None, grammemes: set[str]) -> str:
    form = parse.inflect(grammemes) if parse is not None else None
    if form is None:
        return word
    if "-" in word.strip("-"):
        prefix, last = word.rsplit("-", 1)
        return f"{prefix}-{_match_case(form.word, last)}"
    return _match_case(form.word, word)


def _agreeing(words: list[str], head: int) -> Iterator[list[str]]:
    """The phrase in every case and number of its head, modifiers agreeing; words after the head kept."""
    head_parse = _base_parse(words[head], ("NOUN",))
    if head_parse is None:
        yield words
        return
    numbers = (head_parse.tag.number,) if "Sgtm" in head_parse.tag or "Pltm" in head_parse.tag else NUMBERS
    modifiers = [_modifier(w) for w in words[:head]]
    for number in numbers:
        for case in CASES:
            noun = head_parse.inflect({number, case})
            if noun is None:
                continue
            out = []
            for w, p in zip(words[:head], modifiers, strict=True):
                grammemes = {number, case} | ({head_parse.tag.gender} if number == "sing" else set())
                if (case == "accs" and number == "plur") or (case == "accs" and head_parse.tag.gender == "masc"):
                    grammemes.add(head_parse.tag.animacy or "inan")
                out.append(_inflected_modifier(w, p, grammemes))
            yield [*out, _match_case(noun.word, words[head]), *words[head + 1:]]


def phrase_forms(phrase: str, *, surname: bool = False) -> list[str]:
    """Every form of a gazetteer entry; an entry ending in `!` stands as written."""
    phrase = phrase.strip()
    if phrase.endswith(LITERAL):
        return [phrase[:-1].strip()]
    words = phrase.split()
    if len(words) == 1:
        return word_forms(words[0], surname=surname)
    if surname:  # "Касым-Жомарт Токаев": the given name is an indeclinable or rare word; the surname inflects
        return [" ".join([*words[:-1], f]) for f in word_forms(words[-1], surname=True)]
    forms = {phrase}
    forms.update(" ".join(ws) for ws in _agreeing(words, _head(words)))
    return sorted(forms)


_FUNCTION_WORDS = frozenset({"PREP", "CONJ", "PRCL", "INTJ", "NPRO", "PRED"})


def _content_forms(forms: Iterable[str], entry: str) -> list[str]:
    """Forms without those that are read first as a function word ("после" is a case of "посол", but in
    a text it is the preposition): a cue must not fire on every other sentence."""
    out = []
    for form in forms:
        words = form.split()
        if form != entry and len(words) == 1 and _analyzer().parse(form)[0].tag.POS in _FUNCTION_WORDS:
            continue
        out.append(form)
    return sorted(out)


def cue_forms(phrase: str) -> list[str]:
    """Every form of a topic cue: a verb in the infinitive stands for its whole lexeme (finite forms,
    participles, gerunds: "задержать" finds "задержали", "задержанных"); other entries inflect as names do.
    Cues are lower-case words, so forms come out lower-case."""
    phrase = phrase.strip()
    if not phrase.endswith(LITERAL) and " " not in phrase and _CYRILLIC.search(phrase):
        lowered = phrase.lower().replace("ё", "е")
        verbs = [p for p in _analyzer().parse(phrase)
                 if p.tag.POS == "INFN" and p.normal_form.replace("ё", "е") == lowered]
        if verbs:
            forms = {phrase}
            for parse in verbs:  # both aspects where the dictionary has two ("атаковать")
                forms.update(f.word for f in parse.lexeme)
            return _content_forms(forms, phrase)
    if phrase.endswith(LITERAL):
        return phrase_forms(phrase)
    return _content_forms(phrase_forms(phrase), phrase)


def all_forms(phrases: Iterable[str], *, surname: bool = False) -> dict[str, str]:
    """form -> the entry it came from, for a list of entries."""
    out: dict[str, str] = {}
    for phrase in phrases:
        for form in phrase_forms(phrase, surname=surname):
            out.setdefault(form, phrase)
    return out


FORMS_FILE = "ru/forms.json"


class FormCache:
    """Generated forms, read from the shipped `ru/forms.json` so that loading the taxonomy needs neither
    the dictionary's time (half a second) nor its memory (16 MB a process); an entry missing from the file
    (someone edited the YAML and did not run `aggregator taxonomy-forms`) is generated on the spot."""

    def __init__(self, known: dict[str, list[str]]):
        self.known = known
        self.used: dict[str, list[str]] = {}
        self.generated: list[str] = []

    @classmethod
    def load(cls, folder: Path) -> FormCache:
        path = folder / FORMS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls({})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read generated forms ({exc}); run `aggregator taxonomy-forms`") from exc
        forms = data.get("forms") if isinstance(data, dict) else None
        if not isinstance(forms, dict) or data.get("dictionary") != dictionary_version():
            return cls({})  # another dictionary may inflect differently: regenerate
        return cls({k: v for k, v in forms.items() if isinstance(v, list)})

    def forms(self, entries: Iterable[str], *, surname: bool = False, cue: bool = False) -> list[str]:
        """Forms of `entries`: names (`surname` for leaders), or topic cues (`cue`, see `cue_forms`)."""
        out: dict[str, None] = {}
        for entry in entries:
            key = ("surname:" if surname else "cue:" if cue else "") + entry
            found = self.known.get(key)
            if found is None:
                found = cue_forms(entry) if cue else phrase_forms(entry, surname=surname)
                self.generated.append(key)
            self.used[key] = found
            out.update(dict.fromkeys(found))
        return list(out)

    def stale(self) -> bool:
        """Whether the file lacks entries the taxonomy uses, or holds entries it no longer uses."""
        return bool(self.generated) or set(self.known) != set(self.used)

    def write(self, folder: Path) -> Path:
        path = folder / FORMS_FILE
        about = "Generated by `aggregator taxonomy-forms` from the Russian entries of this taxonomy; do not edit."
        lines = [f"{json.dumps(key, ensure_ascii=False)}: {json.dumps(forms, ensure_ascii=False)}"
                 for key, forms in sorted(self.used.items())]
        path.write_text(f'{{"about": {json.dumps(about)},\n"dictionary": {json.dumps(dictionary_version())},\n'
                        f'"forms": {{\n' + ",\n".join(lines) + "\n}}\n", encoding="utf-8")
        return path
