"""Metrics: micro P/R/F1 for countries and topics, primary accuracy, the worst articles with evidence."""

from __future__ import annotations

from aggregator.tagging.evaluate import assign_folds, evaluate, format_report, story_groups


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


def _story(rid: str, title: str, lang: str = "en") -> dict:
    return {**_record(rid, title + ". Police said so.", [], [], []), "title": title, "lang": lang}


def test_same_story_articles_share_a_fold() -> None:
    records = [
        _story("a", "Concert hall attack suspects charged with terrorism in Moscow"),
        _story("b", "Moscow court charges concert hall attack suspects"),
        _story("c", "Kyrgyz and Tajik border guards exchange fire"),
        _story("d", "Referendum on constitution held in Kazakhstan"),
        _story("e", "Heroin seizure at the Afghan frontier"),
        _story("f", "Hackers leak personal data of citizens"),
    ]
    groups = story_groups(records)
    assert groups[0] == groups[1] and len(set(groups[1:])) == 5
    folds = assign_folds(records, 3)
    assert folds[0] == folds[1] and sorted(set(folds)) == [0, 1, 2]


def test_cross_validation_reports_per_language(taxonomy) -> None:
    records = [
        _record(str(i), text, [], [], topics) | {"lang": lang}
        for i, (text, topics, lang) in enumerate([
            ("A suicide bomber attacked the station; the Islamic State claimed responsibility.", ["terrorism"], "en"),
            ("Hackers leaked personal data in a large cyberattack on the ministry.", ["cyber"], "en"),
            ("Voters approved constitutional amendments in a referendum.", ["elections-governance"], "en"),
            ("The team won the football match.", [], "en"),
            ("Police seized heroin from drug traffickers.", ["crime-trafficking"], "ru"),
        ])
    ]
    result = evaluate(records, taxonomy, cv=2)
    assert result["cv"]["folds"] == 2
    assert set(result["languages"]) == {"en", "ru"}
    assert {"countries_f1", "primary_accuracy", "topics_f1", "lowest_topic_precision", "per_topic"} <= set(
        result["languages"]["en"]["cv"])
    report = format_report(result)
    assert "(cv " in report and "language ru" in report
