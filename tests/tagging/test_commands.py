"""The CLI entry functions `run_tag` and `run_eval` (wired into `aggregator tag` / `aggregator eval-tags`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from aggregator.tagging import load_taxonomy
from aggregator.tagging.commands import EXIT_BAD_INPUT, EXIT_OK, parse_post, run_eval, run_fit, run_tag
from aggregator.tagging.salience import load_model

ARTICLE = "Border guards clash\n\nKyrgyz and Tajik border guards exchanged fire near the undemarcated stretch.\n"


def test_plain_text_first_line_is_the_title() -> None:
    post = parse_post("\n\n  A title \nBody line one.\nBody line two.")
    assert post.title == "A title" and post.text == "Body line one.\nBody line two."


def test_json_input() -> None:
    post = parse_post(json.dumps({"title": "T", "text": "Body", "labels": ["Asia"]}))
    assert (post.title, post.text, post.labels) == ("T", "Body", ("Asia",))


def test_run_tag_readable(tmp_path: Path) -> None:
    path = tmp_path / "post.txt"
    path.write_text(ARTICLE)
    out = io.StringIO()
    assert run_tag(str(path), as_json=False, out=out) == EXIT_OK
    report = out.getvalue()
    assert "country KG" in report and "primary" in report and "border-security" in report
    assert "'border guards'" in report  # evidence is shown with the matched words


def test_run_tag_names_places(tmp_path: Path) -> None:
    """A place tag is printed with its name, as a country tag is."""
    path = tmp_path / "post.txt"
    path.write_text("Raid in Dagestan\n\nPolice in Dagestan detained three men in Makhachkala.\n")
    out = io.StringIO()
    assert run_tag(str(path), as_json=False, out=out) == EXIT_OK
    place_lines = [line for line in out.getvalue().splitlines() if line.startswith("place")]
    assert place_lines and all("(None)" not in line for line in place_lines)
    assert any("(Dagestan)" in line for line in place_lines)


def test_run_tag_json_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"title": "Clash", "text": ARTICLE})))
    out = io.StringIO()
    assert run_tag("-", as_json=True, out=out) == EXIT_OK
    result = json.loads(out.getvalue())
    codes = {t["code"] for t in result["tags"]}
    assert {"KG", "TJ", "border-security"} <= codes
    assert all({"field", "start", "end", "phrase", "rule", "weight"} <= set(e) for t in result["tags"]
               for e in t["evidence"])


def test_run_tag_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_tag(str(tmp_path / "absent.txt"), as_json=False, out=io.StringIO()) == EXIT_BAD_INPUT
    assert "cannot read" in capsys.readouterr().err


def _labeled(tmp_path: Path) -> Path:
    rows = [
        {"id": "one", "title": "Kazakhstan protests", "text": "Protesters in Almaty clashed with riot police.",
         "countries_mentioned": ["KZ"], "countries_primary": ["KZ"], "topics": ["unrest"]},
        {"id": "two", "title": "Phone", "text": "A phone with a big screen.", "countries_mentioned": [],
         "countries_primary": [], "topics": []},
    ]
    path = tmp_path / "labeled.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_run_eval_json_is_one_object(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_eval(str(_labeled(tmp_path)), as_json=True, out=out) == EXIT_OK
    result = json.loads(out.getvalue())
    assert {"countries_f1", "primary_accuracy", "topics_f1", "per_topic"} <= set(result)
    assert result["countries_f1"] == 1.0 and result["primary_accuracy"] == 1.0


def test_run_eval_report(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_eval(str(_labeled(tmp_path)), as_json=False, out=out) == EXIT_OK
    assert "countries" in out.getvalue() and "unrest" in out.getvalue()


def test_run_eval_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1}\nnot json\n')
    assert run_eval(str(path), as_json=True, out=io.StringIO()) == EXIT_BAD_INPUT
    assert "bad.jsonl:2" in capsys.readouterr().err


@pytest.mark.parametrize(("line", "reason"), [
    ("{not json", "not a JSON object"),
    ("[1, 2]", "expected a JSON object"),
    ('{"title": 3, "text": ""}', "`title` must be a string"),
    ('{"title": "", "text": "", "topics": "cyber"}', "`topics` must be a list of strings"),
])
def test_eval_names_the_malformed_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str,
                                       reason: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "1", "title": "T", "text": "Body", "topics": []}\n\n' + line + "\n")
    assert run_eval(str(path), as_json=False, out=io.StringIO()) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{path}:3:" in err and reason in err


def test_eval_cv_json(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    rows = [{"id": str(i), "lang": "en", "title": f"Border guards clash {i}", "text": ARTICLE,
             "countries_mentioned": ["KG", "TJ"], "countries_primary": ["KG"], "topics": ["border-security"]}
            for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = io.StringIO()
    assert run_eval(str(path), as_json=True, cv=2, out=out) == EXIT_OK
    result = json.loads(out.getvalue())
    assert result["cv"]["folds"] == 2 and "cv" in result["languages"]["en"]
    assert run_eval(str(path), as_json=True, cv=1, out=io.StringIO()) == EXIT_BAD_INPUT


def test_fit_writes_a_model_the_taxonomy_loads(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"id": "1", "title": "Border guards clash", "text": ARTICLE,
                                  "topics": ["border-security"]}) + "\n")
    target = tmp_path / "topic-model.yaml"
    assert run_fit([str(labels)], output=str(target), out=io.StringIO()) == EXIT_OK
    topics = list(load_taxonomy().topics)
    model = load_model(tmp_path, topics)
    assert model is not None and set(model.bias) == set(topics)
