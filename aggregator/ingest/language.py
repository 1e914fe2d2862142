"""The language of a post, detected from its text at ingest; the feed's declared language is only a hint.

Why py3langid: it ships its model inside the package (nothing is downloaded at run time), knows all
thirteen languages of the region (ru, en, uk, kk, ky, uz, tg, tk, az, hy, ka, fa, ps; lingua and
langdetect lack Kyrgyz, Tajik, Turkmen, Uzbek or Pashto), tells the Cyrillic languages apart by their
own letters and words (Kazakh қ ә ұ, Kyrgyz ң ө ү, Tajik ҳ ҷ ӣ), and classifies a 1,000-character
sample in a quarter of a millisecond. Restricting it to the region's languages makes it both more accurate
on our feeds and smaller: the columns of the other 130 languages are dropped after loading.

Feeds often declare a language wrongly (a Russian service left at the CMS default "en-us") or not at all,
so the text decides; the declared language stands when the text is too short to judge, when the detector
is unsure, or when it names a language outside the region's set (which the detector cannot recognise).
"""

from __future__ import annotations

import threading
from typing import Any

REGION_LANGUAGES = ("ru", "en", "uk", "kk", "ky", "uz", "tg", "tk", "az", "hy", "ka", "fa", "ps")
SAMPLE_CHARS = 1000  # the title and the start of the text say which language a post is in
MIN_LETTERS = 25  # below this the text is a name or a headline fragment: keep the declared language
MIN_CONFIDENCE = 0.6  # normalised probability among the region's languages

_LOCK = threading.Lock()
_IDENTIFIER: Any = None


def _identifier() -> Any:
    """The model, loaded once per process and restricted to the region's languages."""
    global _IDENTIFIER
    with _LOCK:
        if _IDENTIFIER is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            identifier.set_languages(list(REGION_LANGUAGES))
            # set_languages keeps the full model for a later reset; we never reset, so let it go
            identifier._full_model = (identifier.nb_ptc, identifier.nb_pc, identifier.nb_classes)
            _IDENTIFIER = identifier
        return _IDENTIFIER


def load() -> None:
    """Load the model now (the parse pool's fork server does, so its processes share it)."""
    _identifier()


def detect(title: str, text: str, declared: str | None = None) -> str | None:
    """The post's language code: detected from its text, else the declared one (see the module doc)."""
    if declared is not None and declared not in REGION_LANGUAGES:
        return declared
    sample = f"{title}\n{text}"[:SAMPLE_CHARS]
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return declared
    lang, confidence = _identifier().classify(sample)
    if confidence < MIN_CONFIDENCE and declared is not None:
        return declared
    return str(lang)
