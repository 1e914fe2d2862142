"""`aggregator eval-stories FILE.jsonl [--json]`: the clustering measured against labeled events.

Reading the file and printing are the only effects; the work is in stories/evaluate.py. Exit codes
as for `eval-tags`: 0 success, 2 unusable input, 3 bad taxonomy.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TextIO

from aggregator.stories.cluster import Params
from aggregator.stories.evaluate import evaluate, format_report
from aggregator.tagging.commands import EXIT_OK, _exit_codes, _InputError, _records, write_result
from aggregator.tagging.taxonomy import load_taxonomy


@_exit_codes
def run_eval_stories(path: str, *, as_json: bool, window_hours: float = 72.0,
                     threshold: float = 0.5, out: TextIO = sys.stdout) -> int:
    """Cluster the file's articles in date order and print how well they recover its events."""
    records = _records(path)
    missing = [i for i, r in enumerate(records, 1) if "event" not in r or "id" not in r]
    if missing:
        raise _InputError(f"{path}: records {missing[:5]} have no id or event")
    result = evaluate(records, load_taxonomy(), Params(window=timedelta(hours=window_hours), threshold=threshold))
    write_result(result, format_report, as_json=as_json, out=out)
    return EXIT_OK
