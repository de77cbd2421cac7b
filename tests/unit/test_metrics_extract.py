"""Extraction: JSON found in raw outputs, schema validity, per-field accuracy, micro F1, exact match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.metrics import MetricContext, extract_json_object, score_outputs, summarize_scores
from tunewise.metrics.normalize import parse_date

RECEIPT_SCHEMA = {
    "type": "object",
    "properties": {
        "company": {"type": "string"},
        "date": {"type": "string"},
        "address": {"type": "string"},
        "total": {"type": "string"},
    },
    "required": ["company", "date", "address", "total"],
    "additionalProperties": False,
}
NORMALIZERS = {"total": "money", "date": "date", "address": "fuzzy"}
GOLD = {"company": "Café Lux", "date": "25/12/2018", "address": "NO 12, JALAN ABC, 81200 JOHOR", "total": "9.00"}


@pytest.fixture
def ctx() -> MetricContext:
    return MetricContext(kind="extract", schema=RECEIPT_SCHEMA, labels=None, field_normalizers=NORMALIZERS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  {"a": {"b": [1, 2]}}  ', {"a": {"b": [1, 2]}}),
        ('Sure! Here it is: {"a": 1} Hope this helps {"b": 2}', {"a": 1}),
        ('Use {curly} braces, e.g. {"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Answer:\n```\n{"a": "x}"}\n```\ntrailing', {"a": "x}"}),
        ('{"a": 1}\nThe total is {9}.', {"a": 1}),
        ('[{"a": 1}]', None),  # a list is a different answer, not a wrapper
        ('"{\\"a\\": 1}"', None),  # a JSON string is not an object
        ("42", None),
        ("", None),
        ("   \n", None),
        ('{"a": "x", "b": ', None),  # truncated
        ("no json at all", None),
    ],
)
def test_extract_json_object(text: str, expected: dict | None) -> None:
    assert extract_json_object(text) == expected


def test_fenced_prose_output_with_wrong_types_and_unicode(ctx: MetricContext) -> None:
    output = (
        "Here you go:\n```json\n"
        '{"company": "CAFE\u0301 LUX", "date": "2018-12-25", '
        '"address": "No. 12 Jalan ABC 81200 Johor Bahru", "total": 9}'
        "\n```\nThanks!"
    )
    [(parsed, scores)] = score_outputs(ctx, [output], [GOLD])
    assert parsed["total"] == 9
    assert scores["parsed"] is True
    assert scores["schema_valid"] is False  # total is a number, the schema wants a string
    assert "total" in scores["schema_error"]
    assert scores["fields"] == {"company": True, "date": True, "address": True, "total": True}
    assert scores["exact_match"] is True
    assert (scores["tp"], scores["fp"], scores["fn"]) == (4, 0, 0)
    assert scores["field_f1"]["address"] == pytest.approx(12 / 13, abs=1e-6)
    json.dumps(scores)  # JSON-serialisable


def test_empty_output_scores_every_field_wrong(ctx: MetricContext) -> None:
    gold = dict(GOLD, total="")
    [(parsed, scores)] = score_outputs(ctx, [""], [gold])
    assert parsed is None
    assert scores["parsed"] is False and scores["schema_valid"] is False
    assert scores["fields"] == {"company": False, "date": False, "address": False, "total": False}
    assert (scores["tp"], scores["fp"], scores["fn"]) == (0, 0, 3)


def test_empty_gold_field_needs_empty_prediction(ctx: MetricContext) -> None:
    gold = dict(GOLD, total="")
    empty_pred = json.dumps(dict(GOLD, total=" "))
    missing_pred = json.dumps({k: v for k, v in GOLD.items() if k != "total"})
    filled_pred = json.dumps(GOLD)
    (_, empty), (_, missing), (_, filled) = score_outputs(ctx, [empty_pred, missing_pred, filled_pred], [gold] * 3)
    assert empty["fields"]["total"] and missing["fields"]["total"]
    assert not missing["schema_valid"]  # a required key is absent
    assert not filled["fields"]["total"]
    assert (filled["tp"], filled["fp"], filled["fn"]) == (3, 1, 0)


def test_summary_hand_computed(ctx: MetricContext) -> None:
    gold_d = dict(GOLD, total="")
    outputs = [
        json.dumps(GOLD),  # A: all 4 right
        json.dumps({"company": "Other", "address": GOLD["address"], "total": "RM 9"}),  # B: 2 right, date missing
        "I cannot read this receipt.",  # C: unparseable
        json.dumps(dict(GOLD, total="")),  # D: all right, empty total predicted empty
    ]
    results = score_outputs(ctx, outputs, [GOLD, GOLD, GOLD, gold_d])
    scores = [s for _, s in results]
    assert [(s["tp"], s["fp"], s["fn"]) for s in scores] == [(4, 0, 0), (2, 1, 2), (0, 0, 4), (3, 0, 0)]
    metrics, per_field = summarize_scores(ctx, scores, samples=200, seed=1)
    assert metrics["json_parse_rate"].value == pytest.approx(0.75)
    assert metrics["schema_valid_rate"].value == pytest.approx(0.5)
    assert metrics["field_accuracy"].value == pytest.approx(10 / 16)
    assert metrics["micro_f1"].value == pytest.approx(18 / 25)
    assert metrics["exact_match"].value == pytest.approx(0.5)
    assert {k: v.value for k, v in per_field.items()} == pytest.approx(
        {"company": 0.5, "date": 0.5, "address": 0.75, "total": 0.75}
    )
    assert all(v.n == 4 for v in [*metrics.values(), *per_field.values()])
    for value in [*metrics.values(), *per_field.values()]:
        assert value.ci_low <= value.value <= value.ci_high


def test_without_schema_fields_come_from_gold() -> None:
    ctx = MetricContext(kind="extract", schema=None, labels=None, field_normalizers={})
    [(_, scores)] = score_outputs(ctx, ['{"a": "X", "b": "y", "extra": 1}'], [{"a": "x", "b": "z"}])
    assert scores["fields"] == {"a": True, "b": False}
    assert scores["schema_valid"] is True  # parsed, and no schema to violate


def test_non_object_target_is_an_error(ctx: MetricContext) -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        score_outputs(ctx, ["{}"], ["not a dict"])


def test_receipts_dev_gold_against_itself(ctx: MetricContext, shared_data: Path) -> None:
    rows = [json.loads(line) for line in (shared_data / "sroie" / "dev.jsonl").read_text().splitlines()]
    golds = [row["fields"] for row in rows]
    plain = [json.dumps(g) for g in golds]
    chatty = [f"Extracted fields:\n```json\n{json.dumps(g, indent=2, ensure_ascii=False)}\n```\nDone." for g in golds]
    for outputs in (plain, chatty):
        metrics, per_field = summarize_scores(ctx, [s for _, s in score_outputs(ctx, outputs, golds)], samples=100)
        assert metrics["field_accuracy"].value == 1.0
        assert metrics["schema_valid_rate"].value == 1.0
        assert metrics["exact_match"].value == 1.0
        assert all(v.value == 1.0 for v in per_field.values())
    assert all(parse_date(g["date"]) for g in golds), "every gold date parses, none falls back to text"
