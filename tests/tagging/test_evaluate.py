"""Metrics: micro P/R/F1 for countries and topics, primary accuracy, the worst articles with evidence."""

from __future__ import annotations

from aggregator.tagging.evaluate import evaluate, format_report


def _record(rid: str, text: str, mentioned: list[str], primary: list[str], topics: list[str]) -> dict:
    return {"id": rid, "title": "", "text": text, "countries_mentioned": mentioned,
            "countries_primary": primary, "topics": topics}


def test_metrics_count_errors(taxonomy) -> None:
    records = [
        # right country, one missed (UZ), one topic right
        _record("a", "Smuggling of heroin through Tajikistan rose; drug traffickers use new routes.",
                ["TJ", "UZ"], ["TJ"], ["crime-trafficking"]),
        # a false country (KZ is not labeled), primary skipped (none labeled)
        _record("b", "Kazakhstan's phone market grew.", [], [], []),
    ]
    result = evaluate(records, taxonomy)
    assert result["countries_precision"] == 0.5 and result["countries_recall"] == 0.5
    assert result["primary_accuracy"] == 1.0 and result["primary_articles"] == 1
    assert result["per_topic"]["crime-trafficking"]["f1"] == 1.0
    assert result["per_topic"]["cyber"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 0, "fp": 0, "fn": 0}
    worst = {e["id"]: e for e in result["worst_errors"]}
    assert worst["b"]["countries_false"]["KZ"][0].startswith("text:'Kazakhstan'")
    assert worst["a"]["countries_missed"] == ["UZ"]
    assert "worst articles" in format_report(result)


def test_wrong_primary_is_reported(taxonomy) -> None:
    records = [_record("c", "Russia and Russia again, and once Armenia.", ["RU", "AM"], ["AM"], [])]
    result = evaluate(records, taxonomy)
    assert result["primary_accuracy"] == 0.0
    assert result["worst_errors"][0]["primary"] == {"predicted": "RU", "expected": ["AM"]}
