"""What a post says about its event, in a form two languages share. Pure: text and tags in, keys out.

Linking an English and a Russian report of one clash cannot lean on their words, and machine
translation is out of reach; what they do share is names, numbers, dates and what the tagger knows
(countries, places, topics). So every word becomes a *name key*: the word transliterated to Latin
(Russian letters by English habits: дж → j, х → kh), then reduced to its consonant skeleton with the
spellings that English and Russian transliteration disagree on folded together (zh/j, kh/h, c/k,
w/v), vowels dropped and doubled letters collapsed. "Samarkand" and "Самарканде", "Tokayev" and
"Токаевым", "Khalilov" and "Халилова" meet on one key. Russian case endings are stripped too, as a
second key, so an inflected name still meets its nominative.

Within one language the same keys make the content similarity (a lemmatizer-free stem). The table is
ten lines, so a transliteration package is not worth a dependency: `unidecode` spells х as "kh" but
ж as "zh" and ы as "y" without knowing дж, and `transliterate` follows the GOST tables, which are
further from the English spellings that news agencies use than the folding below.

Near-identical copies are found with MinHash over word shingles: 64 minimums of a 64-bit keyed
hash, which is the whole of what the `datasketch` package would do here (it brings numpy and a
storage layer this module must not have).
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass, fields
from functools import lru_cache
from sys import intern
from typing import Any

import numpy as np

from aggregator.tagging.records import KIND_COUNTRY, KIND_PLACE, KIND_TOPIC, Tag

MIN_WORDS = 12  # a post with fewer words (title and text) cannot say which event it reports: it stays alone
MINHASH_SIZE = 64
MINHASH_SCHEME = 2  # how `minhash` computes a signature; stored with it (signatures of two schemes never match)
SHINGLE = 4  # words per shingle for near-duplicate detection

_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya", "қ": "k", "ғ": "g", "ү": "u", "ұ": "u", "ң": "n", "ә": "a", "ө": "o",
    "һ": "h", "ҳ": "h", "ӯ": "u", "ӣ": "i", "ҷ": "j", "ў": "u",
}
# Spellings English and Russian transliteration disagree on, folded to one form (order matters).
_FOLD = (("dzh", "j"), ("dj", "j"), ("zh", "j"), ("kh", "h"), ("tch", "ch"), ("ch", "č"), ("ck", "k"), ("q", "k"),
         ("c", "k"),
         ("w", "v"), ("x", "ks"), ("ph", "f"))
_VOWELS = re.compile(r"[aeiouy]+")
_DOUBLES = re.compile(r"(.)\1+")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)
# Russian endings of nouns, adjectives and surnames, longest first.
_RU_ENDINGS = ("ями", "ами", "ого", "его", "ому", "ему", "ыми", "ими", "ой", "ей", "ом", "ем", "ым", "им",
               "ах", "ях", "ую", "юю", "ий", "ый", "ая", "яя", "ое", "ее", "а", "я", "у", "ю", "е", "ы", "и")
_EN_ENDINGS = ("'s", "’s", "s")
MIN_KEY = 3  # shorter skeletons ("pr", "sd") say nothing

# Words too common in news to tell one event from another, in either language (as keys).
_STOP_WORDS = """
the and that this with from have has had were was been their there which would could about after before
also said says will into over under more than most other some such when where while they them then
year years week day days people told according reported report reports news read more photo video
это как что для его она они был была были было уже который которые также после года году время
заявил сообщил сообщает сообщили данным словам более может всех этом этого того так при если
"""
_MONTHS = (("january", "январ"), ("february", "феврал"), ("march", "март"), ("april", "апрел"),
           ("may", "ма[яй](?![а-я])"), ("june", "июн"), ("july", "июл"), ("august", "август"),
           ("september", "сентябр"), ("october", "октябр"), ("november", "ноябр"), ("december", "декабр"))
_MONTH = "|".join(f"(?P<m{i}>{en}\\b|{ru}[а-я]*)" for i, (en, ru) in enumerate(_MONTHS, 1))
# A date is found from its day: digits are rare in text, and the 24 spellings of a month are tried
# only next to them (tried at every word, they were a fifth of a post's features). Both forms, on
# lower-cased text: "5 May", "5th of May", "5 мая" (day, month) and "May 5", "May 5th" (month, day).
_DIGITS = re.compile(r"\d+")
_MONTH_AFTER_DAY = re.compile(rf"(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTH})")
_MONTH_ENDING = re.compile(rf"\b(?:{_MONTH})$")  # searched with endpos where the month must end
_DAY_END = re.compile(r"(?:st|nd|rd|th)?\b")
_LONGEST_MONTH_WORD = 64  # how far back a month word before a day may start
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:[ ,\u00a0]\d{3})+|\d+)(?:[.,](\d+))?(?![\w])")


@dataclass(frozen=True, slots=True)
class PostFeatures:
    """The language-independent summary of a post that clustering compares."""

    words: Counter[str]  # name keys of every non-stop word, with counts (content similarity)
    names: frozenset[str]  # name keys of capitalized words (people, places, organisations)
    numbers: frozenset[str]  # numbers other than years, normalized ("81,31" = "81.31")
    dates: frozenset[tuple[int, int]]  # (month, day) named in the text
    countries: frozenset[str]
    places: frozenset[str]
    topics: frozenset[str]
    minhash: tuple[int, ...]  # empty when the text is too short to compare
    tiny: bool  # too few words to join anything
    norm: float = 0.0  # Euclidean norm of `words` (cosine similarity without recounting)
    scheme: int = MINHASH_SCHEME  # of `minhash`: posts stored before a change keep theirs

    def __reduce__(self) -> tuple[type[PostFeatures], tuple[object, ...]]:
        """Pickled as the constructor's arguments: features cross from the parse processes to the
        worker with every post, and the field-by-field state a slotted dataclass pickles by default
        cost both sides a third more."""
        return PostFeatures, _FIELDS(self)


_FIELDS = operator.attrgetter(*(field.name for field in fields(PostFeatures)))  # in the constructor's order


_TO_LATIN = str.maketrans(_CYRILLIC)
_NOT_LATIN = re.compile(r"[^a-zč]")
_CYRILLIC_LETTER = re.compile("[а-яё]")


def transliterate(word: str) -> str:
    """Lower-cased Latin spelling of a word in Latin or Cyrillic script."""
    return word.lower().replace("дж", "j").translate(_TO_LATIN)


def skeleton(latin: str) -> str:
    """The consonant skeleton of a Latin spelling: its first letter, then consonants, folded."""
    for old, new in _FOLD:
        latin = latin.replace(old, new)
    latin = _NOT_LATIN.sub("", latin)
    if not latin:
        return ""
    return _DOUBLES.sub(r"\1", latin[0] + _VOWELS.sub("", latin[1:]))


@lru_cache(maxsize=200_000)
def name_keys(word: str) -> frozenset[str]:
    """The keys of one word: its skeleton, and for a Cyrillic word also that of its stem (cached:
    news repeats its words, and this is most of the cost of a post's features)."""
    keys = {skeleton(transliterate(word))}
    low = word.lower()
    if _CYRILLIC_LETTER.search(low):
        for ending in _RU_ENDINGS:
            if low.endswith(ending) and len(low) - len(ending) >= 4:
                keys.add(skeleton(transliterate(low[: -len(ending)])))
                break
    else:
        for ending in _EN_ENDINGS:
            if low.endswith(ending) and len(low) - len(ending) >= 4:
                keys.add(skeleton(low[: -len(ending)]))
                break
    return frozenset(k for k in keys if len(k) >= MIN_KEY)


_STOP_KEYS = frozenset(k for w in _STOP_WORDS.split() for k in name_keys(w))


def _content_keys(word: str) -> tuple[str, ...]:
    """A word's keys that say something (stop words' keys removed), in a fixed order (cached by
    `_token`)."""
    return tuple(sorted(name_keys(word) - _STOP_KEYS))


@lru_cache(maxsize=200_000)
def _token(token: str) -> tuple[tuple[str, ...], bool, int]:
    """A token's content keys (none for a word under four letters), whether it is written as names
    are (capitalized, or an acronym of up to six letters) and its hash for `minhash` (its own,
    lower-cased: every token is shingled, short or not)."""
    hashed = _word_hash(token.lower())
    if len(token) < 4:
        return (), False, hashed
    capitalized = (token[0].isupper() and not token.isupper()) or (token.isupper() and len(token) <= 6)
    return _content_keys(token), capitalized, hashed


def _numbers_and_dates(text: str) -> tuple[frozenset[str], frozenset[tuple[int, int]]]:
    """The numbers (other than years) and the (month, day) dates a text names. Both start at a run of
    digits, found once for both (found twice, they were a seventh of a post's features). Dates are
    read on the lower-cased text, which month names need; numbers on the text as written, at the same
    runs unless lower-casing moved characters (an 'İ' becomes two)."""
    low = text.lower()
    runs = [run.span() for run in _DIGITS.finditer(low)]
    moved = len(low) != len(text)
    return (_numbers(text, [run.span() for run in _DIGITS.finditer(text)] if moved else runs),
            _dates(low, runs))


def _numbers(text: str, runs: list[tuple[int, int]]) -> frozenset[str]:
    found = set()
    end = 0
    # A number starts a run of digits: the pattern is tried there only (tried at every character, its
    # look-behind made it an eighth of a post's features). A run inside the last number is part of it.
    for start, _ in runs:
        if start < end or (match := _NUMBER.match(text, start)) is None:
            continue
        end = match.end()
        whole = re.sub(r"[ ,\u00a0]", "", match.group(1))
        if match.group(2) is not None:
            found.add(f"{int(whole)}.{match.group(2)}")
        elif not (1900 <= (value := int(whole)) <= 2100 or value < 2):  # years and "one" are in every post
            found.add(str(value))
    return frozenset(found)


def _dates(low: str, runs: list[tuple[int, int]]) -> frozenset[tuple[int, int]]:
    found = set()
    for start, end in runs:
        if end - start > 2 or not 1 <= (day := int(low[start:end])) <= 31:
            continue
        if start == 0 or not _is_word_char(low[start - 1]):  # "5 May": the day starts a word
            after = _MONTH_AFTER_DAY.match(low, end)
            if after is not None:
                found.add((_month_of(after), day))
        gap = start
        while gap > 0 and low[gap - 1].isspace():
            gap -= 1
        if gap < start and _DAY_END.match(low, end):  # "May 5": a month word, space, the day
            before = _MONTH_ENDING.search(low, max(0, gap - _LONGEST_MONTH_WORD), gap)
            if before is not None:
                found.add((_month_of(before), day))
    return frozenset(found)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _month_of(match: re.Match[str]) -> int:
    return int(match.lastgroup[1:])  # type: ignore[index]  (the month's group: m1 ... m12)


def _hash(token: str, seed: int) -> int:
    """A 64-bit keyed hash: stable across processes and releases (Python's own `hash` of a str is
    salted per process), as a stored signature must be."""
    digest = hashlib.blake2b(token.encode(), digest_size=8, key=seed.to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "little")


def _word_hash(word: str) -> int:
    return _hash(word, 0)


_MIX_1, _MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_SHIFTS = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, element-wise and in place: every bit of the result depends on every
    bit of `h` (in place: a post's ten temporary arrays were a sixth of its signature's time)."""
    h ^= h >> _SHIFTS[0]
    h *= _MIX_1
    h ^= h >> _SHIFTS[1]
    h *= _MIX_2
    h ^= h >> _SHIFTS[2]
    return h


def minhash(tokens: list[str]) -> tuple[int, ...]:
    """MinHash signature of a token list's word shingles; empty when there are too few.

    Scheme 2: each word is hashed once (cached by `extract`: news repeats its words), a shingle's
    hash is a mix of its words' hashes at their places, all in numpy. Scheme 1 hashed every
    shingle's text with blake2b, ~1,000 calls for a long article and a third of its features' cost."""
    return _signature(np.fromiter(map(_word_hash, tokens), dtype=np.uint64, count=len(tokens)))


def _signature(words: np.ndarray) -> tuple[int, ...]:
    """`minhash` of the tokens whose hashes these are."""
    count = len(words) - SHINGLE + 1
    if count < 8:
        return ()
    shingles = words[:count] * _PLACES[0]
    for place in range(1, SHINGLE):
        shingles += words[place:place + count] * _PLACES[place]  # wraps modulo 2^64, as meant
    base = _mix(shingles)
    # A repeated shingle changes no minimum, so the distinct ones are only counted: sorted, which
    # for a post's hundred values is a tenth of what np.unique's hash table costs.
    base.sort()
    if np.count_nonzero(base[1:] != base[:-1]) < 7:  # fewer than 8 distinct shingles
        return ()
    # 64 hash functions from one: h_i(x) = h(x) xor m_i, with fixed random masks m_i (the masks ×
    # shingles table in one numpy step: 4,000 xors a post were half the cost of its features in Python).
    return tuple(np.bitwise_xor.outer(_MASKS, base).min(axis=1).tolist())


_MASKS = np.array([_hash(f"mask{i}", 1) for i in range(MINHASH_SIZE)], dtype=np.uint64)
_PLACES = np.array([_hash(f"place{i}", 2) | 1 for i in range(SHINGLE)], dtype=np.uint64)  # odd: invertible


def minhash_similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity of two signatures' shingle sets (0 when either is empty; both
    must be of one scheme: see `near_copy`)."""
    if not a or not b:
        return 0.0
    if len(a) != len(b):
        raise ValueError("MinHash signatures of different sizes")
    return sum(map(operator.eq, a, b)) / len(a)  # map: a third of a generator's time


def near_copy(a: PostFeatures, b: PostFeatures) -> float:
    """How much of two posts' shingles they share (MinHash estimate); 0 across schemes.

    A post clustered before the scheme changed keeps the signature it was compared with then, so
    recluster, replaying stored features, still decides as ingest did; a new post is simply not
    found as a copy of it (content similarity still applies) for the rest of its window."""
    if a.scheme != b.scheme:
        return 0.0
    return minhash_similarity(a.minhash, b.minhash)


def extract(title: str, text: str, tags: list[Tag] | tuple[Tag, ...]) -> PostFeatures:
    """The features of a post from its title, text and the tagger's tags."""
    body = f"{title}\n{text}" if title else text
    tokens = _WORD.findall(body)
    # Each distinct token once, in the order tokens first appear (so the keys are counted, and
    # stored, in the order of their first appearance, as a pass over every token gives): news
    # repeats its words, and this loop was the largest part of a post's features.
    keyed: list[str] = []
    names: set[str] = set()
    hashes: dict[str, int] = {}  # each token's, for its shingles: a dict is read faster than a cache
    first = tokens[0] if tokens else ""
    for token, n in Counter(tokens).items():
        keys, capitalized, hashes[token] = _token(token)
        if not keys:
            continue
        keyed.extend(keys * n if n > 1 else keys)
        if capitalized and (n > 1 or token != first):  # the first word is capitalized anyway
            names.update(keys)
    words = Counter(keyed)  # counted in C, in the order the keys first appear
    # Names the tagger already turned into countries and places are counted there, not twice.
    for tag in tags:
        for evidence in tag.evidence:
            for word in _WORD.findall(evidence.phrase):
                names.difference_update(name_keys(word))
    numbers, dates = _numbers_and_dates(body)
    return PostFeatures(
        words=words,
        names=frozenset(names),
        numbers=numbers,
        dates=dates,
        countries=frozenset(t.code for t in tags if t.kind == KIND_COUNTRY),
        places=frozenset(t.code for t in tags if t.kind == KIND_PLACE),
        topics=frozenset(t.code for t in tags if t.kind == KIND_TOPIC),
        minhash=_signature(np.fromiter(map(hashes.__getitem__, tokens), dtype=np.uint64, count=len(tokens))),
        tiny=len(tokens) < MIN_WORDS,
        norm=_norm(words),
    )


def _norm(words: Counter[str]) -> float:
    counts = words.values()
    return math.sqrt(sum(map(operator.mul, counts, counts)))  # integers: the same sum in any order


def _minhash_key(scheme: int) -> str:
    """The JSON key of a signature: "m" for scheme 1 (stored before schemes were numbered), "m2"..."""
    return "m" if scheme == 1 else f"m{scheme}"


def to_json(f: PostFeatures) -> dict[str, object]:
    """A JSON-ready form of the features, stored beside the post so candidates are not recomputed."""
    return {"w": dict(f.words), "n": sorted(f.names), "#": sorted(f.numbers), "d": sorted(f.dates),
            "c": sorted(f.countries), "p": sorted(f.places), "t": sorted(f.topics),
            _minhash_key(f.scheme): list(f.minhash), "tiny": f.tiny}


def from_json(d: dict[str, Any]) -> PostFeatures:
    """The features stored by `to_json` (decoded JSON: strings and integers where it wrote them).

    A worker decodes every post another worker clustered, and a whole window when it loads one, so
    the conversions run in C (`map`, `zip`) rather than a comprehension a word."""
    def strings(key: str) -> frozenset[str]:
        return frozenset(map(intern, d.get(key) or ()))

    # Interned: a window holds tens of thousands of posts that share one vocabulary; a decoded string
    # apiece was a third of the window's memory.
    stored = d.get("w") or {}
    words: Counter[str] = Counter(dict(zip(map(intern, stored), stored.values(), strict=True)))
    scheme = 1 if _minhash_key(1) in d else MINHASH_SCHEME
    return PostFeatures(
        words=words,
        names=strings("n"), numbers=strings("#"),
        dates=frozenset((int(m), int(day)) for m, day in d.get("d") or ()),
        countries=strings("c"), places=strings("p"), topics=strings("t"),
        minhash=tuple(d.get(_minhash_key(scheme)) or ()),
        tiny=bool(d.get("tiny")),
        norm=_norm(words),
        scheme=scheme,
    )
