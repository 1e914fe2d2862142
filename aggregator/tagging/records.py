"""What goes into the tagger and what comes out. Frozen, slotted, no behaviour: these are stored and compared.

Evidence offsets index the string of their field: `post.title`, `post.text`, or for `label` the labels
joined by newlines (`"\\n".join(post.labels)`), so one offset space covers all of a source's categories.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_EVIDENCE = 25  # evidence kept per tag (title first, then in text order); the score counts every match
FIELD_TITLE = "title"
FIELD_TEXT = "text"
FIELD_LABEL = "label"
KIND_COUNTRY = "country"
KIND_TOPIC = "topic"
KIND_PLACE = "place"  # a place below the country (Chechnya, the Fergana Valley); role None
ROLE_PRIMARY = "primary"
ROLE_MENTIONED = "mentioned"


@dataclass(frozen=True, slots=True)
class TagInput:
    """A post as the tagger sees it.

    `labels` are the source's own categories. `default_countries` / `default_topics` are the source's
    configured focus: a weak prior that can raise the score of a country or topic the text already
    supports, never create one.
    """

    title: str
    text: str
    labels: tuple[str, ...] = ()
    default_countries: tuple[str, ...] = ()
    default_topics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Evidence:
    """One matched phrase that supports a tag: where it is, which rule matched it, what it weighed."""

    field: str
    start: int
    end: int
    phrase: str
    rule: str
    weight: float


@dataclass(frozen=True, slots=True)
class Tag:
    """A country (with role primary/mentioned), a place or a topic (role None), its score and its evidence."""

    kind: str
    code: str
    role: str | None
    score: float
    evidence: tuple[Evidence, ...]


def label_field_text(labels: tuple[str, ...]) -> str:
    """The string that `label` evidence offsets index into."""
    return "\n".join(labels)
