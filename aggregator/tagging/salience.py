"""Topic salience: is a topic what a sentence of the article is *about*, or only a word that passes by?

The cue phrases of topics.yaml say which words point at a topic; this module measures how they sit in the
article and turns that into a probability with a small logistic model:

- where the cues are: the title, the lead (opening of the text), the body;
- how many distinct cues, in how many sentences, and the best single sentence's cue weight;
- cue density (weight per 100 words) and the topic's share of all topic evidence in the article;
- how much of the cue weight sits inside quotation marks;
- negative context (sports, consumer tech, business) scored by the same phrase machinery.

The model is one set of feature weights shared by every topic plus one bias per topic, fitted on the labeled
dev set by Newton's method (`fit`); it is stored as data (defaults/taxonomy/topic-model.yaml), so the tagger
is a dot product and a sigmoid, with no numeric library at run time. Few shared weights generalise better to
unseen articles than one model per topic on 140 articles would.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from aggregator.errors import ConfigError
from aggregator.tagging.configfiles import mapping, number, read_yaml

FEATURES = ("score", "title", "lead", "distinct", "distinct_weight", "strong", "sentences", "best_sentence",
            "density", "share", "quoted", "context", "actors")
STRONG = 0.66  # a cue of at least this fraction of the threshold names the topic by itself (topics.yaml)
CUTOFF = 0.45  # probability from which a topic is tagged: a little below 0.5, as a missed topic costs as much
MIN_SCORE = 1.0  # rule score (over the topic threshold) below which no topic is considered at all
LEAD_CHARS = 800  # the opening of the text that counts as its lead...
LEAD_SHARE = 0.4  # ...but never more than this share of it: in a short excerpt everything would be "lead"
_CAP = 3.0
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u00bb)]*\s+|\n\s*\n|\n(?=\s*[A-Z\u0410-\u042f\"\u201c\u00ab])")
_QUOTES = re.compile("[\"\u201c\u201d\u00ab\u00bb]")
_WORDS = re.compile(r"\w+")


class Cue(NamedTuple):
    """One positive cue occurrence of a topic: field, offset, phrase and weight (a tuple: made per hit)."""

    field: str
    start: int
    phrase: str
    weight: float
    actor: bool = False


@dataclass(frozen=True, slots=True)
class TopicModel:
    """Logistic model: p = sigmoid(bias[topic] + sum(weights[f] * x[f]))."""

    weights: Mapping[str, float]
    bias: Mapping[str, float]
    default_bias: float
    cutoff: float = CUTOFF
    min_score: float = MIN_SCORE

    def probability(self, topic: str, x: Mapping[str, float]) -> float:
        z = self.bias.get(topic, self.default_bias) + sum(self.weights.get(f, 0.0) * v for f, v in x.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def sentence_starts(text: str) -> list[int]:
    """Offsets where sentences (or paragraphs) of `text` begin."""
    return [0] + [m.end() for m in _SENTENCE_END.finditer(text)]


def features(cues: Sequence[Cue], threshold: float, layout: Layout, total_score: float, score: float,
             context: float) -> dict[str, float]:
    """Salience features of one topic in one article; `score` is the rule score over the threshold."""
    title = lead = body_weight = quoted = 0.0
    per_sentence: dict[int, float] = {}
    distinct: dict[str, float] = {}
    actors: set[str] = set()
    starts, quotes = layout.starts, layout.quotes
    for c in cues:
        distinct[c.phrase] = c.weight
        if c.actor:
            actors.add(c.phrase)
        if c.field != "text":
            title += c.weight
            continue
        body_weight += c.weight
        if c.start < layout.lead:
            lead += c.weight
        i = bisect.bisect_right(starts, c.start) - 1
        per_sentence[i] = per_sentence.get(i, 0.0) + c.weight
        if quotes and (bisect.bisect_left(quotes, c.start) - bisect.bisect_left(quotes, starts[i])) % 2:
            quoted += c.weight
    strong = STRONG * threshold
    return {
        "score": math.log1p(score),
        "title": min(title / threshold, _CAP),
        "lead": min(lead / threshold, _CAP),
        "distinct": math.log1p(len(distinct)),
        "distinct_weight": min(sum(distinct.values()) / threshold, _CAP),
        "strong": min(sum(w for w in distinct.values() if w >= strong) / threshold, _CAP),
        "sentences": math.log1p(len(per_sentence)),
        "best_sentence": min(max(per_sentence.values(), default=0.0) / threshold, _CAP),
        "density": min(100.0 * body_weight / max(layout.words, 50) / threshold, _CAP),
        "share": score / total_score if total_score else 0.0,
        "quoted": quoted / body_weight if body_weight else 0.0,
        "context": min(context, _CAP),
        "actors": sum(distinct[p] for p in actors) / total if (total := sum(distinct.values())) else 0.0,
    }


class Layout(NamedTuple):
    """What the features need to know about the text, found once per post."""

    starts: list[int]  # sentence starts
    quotes: list[int]  # offsets of quotation marks
    words: int
    lead: int  # characters of the text that count as its lead


def layout(text: str) -> Layout:
    return Layout(sentence_starts(text), [m.start() for m in _QUOTES.finditer(text)], word_count(text),
                  min(LEAD_CHARS, int(LEAD_SHARE * len(text))))


def word_count(text: str) -> int:
    return text.count(" ") + text.count("\n") + 1 if text else 0


def load_model(folder: Path, topics: Sequence[str]) -> TopicModel | None:
    """The fitted model in topic-model.yaml (None when the file is absent: rule thresholds decide, which is
    how a first model is fitted); ConfigError names what is wrong in a file that exists."""
    if not (folder / "topic-model.yaml").is_file():
        return None
    data = read_yaml(folder, "topic-model.yaml")
    where = "topic-model.yaml"
    weights = {f: number(v, f"{where}: weights: {f}") for f, v in mapping(data.get("weights"), where).items()}
    unknown = sorted(set(weights) - set(FEATURES))
    if unknown:
        raise ConfigError(f"{where}: unknown features {unknown}")
    bias = {t: number(v, f"{where}: bias: {t}") for t, v in mapping(data.get("bias"), where).items()}
    unknown = sorted(set(bias) - set(topics))
    if unknown:
        raise ConfigError(f"{where}: bias for unknown topics {unknown}")
    return TopicModel(weights, bias, number(data.get("default_bias", 0.0), f"{where}: default_bias"),
                      number(data.get("cutoff", CUTOFF), f"{where}: cutoff", positive=True))


# ---- fitting (used by `aggregator fit-topics` and `eval-tags --cv`; never on the tagging path) ----

def fit(rows: Sequence[tuple[str, Mapping[str, float], bool]], topics: Sequence[str], *,
        l2: float = 1.0, iterations: int = 25) -> TopicModel:
    """Penalised logistic regression by Newton's method over (topic, features, gold) rows.

    Parameters: one weight per feature (shared by all topics) and one bias per topic; the L2 penalty
    keeps a topic with few examples close to the shared behaviour.
    """
    names = list(FEATURES) + [f"bias:{t}" for t in topics]
    index = {t: len(FEATURES) + i for i, t in enumerate(topics)}
    n = len(names)
    beta = [0.0] * n
    data = []
    for topic, x, gold in rows:
        vec = [x.get(f, 0.0) for f in FEATURES]
        data.append((vec, index[topic], 1.0 if gold else 0.0))
    for _ in range(iterations):
        grad = [-l2 * b for b in beta]
        hess = [[0.0] * n for _ in range(n)]
        for i in range(n):
            hess[i][i] = l2
        for vec, bi, y in data:
            z = beta[bi] + sum(w * v for w, v in zip(beta, vec, strict=False))
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            full = [*vec, 1.0]
            idx = [*range(len(vec)), bi]
            r, s = y - p, p * (1 - p)
            for a, va in zip(idx, full, strict=True):
                grad[a] += r * va
                row = hess[a]
                for b, vb in zip(idx, full, strict=True):
                    row[b] += s * va * vb
        step = _solve(hess, grad)
        beta = [b + d for b, d in zip(beta, step, strict=True)]
        if max(abs(d) for d in step) < 1e-6:
            break
    return TopicModel(dict(zip(FEATURES, (round(b, 4) for b in beta[: len(FEATURES)]), strict=True)),
                      {t: round(beta[index[t]], 4) for t in topics}, 0.0)


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the matrix is small and positive definite)."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            if f:
                for c in range(col, n + 1):
                    m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


def model_yaml(model: TopicModel, note: str) -> str:
    """The model as the YAML file the taxonomy loads."""
    lines = [f"# {line}" for line in note.splitlines()]
    lines += [f"cutoff: {model.cutoff}", "default_bias: 0.0", "weights:"]
    lines += [f"  {f}: {w}" for f, w in model.weights.items()]
    lines += ["bias:"] + [f"  {t}: {b}" for t, b in model.bias.items()]
    return "\n".join(lines) + "\n"
