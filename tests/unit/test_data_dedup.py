"""Exact and near-duplicate detection, cross-split leakage and the grounding check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.data.dedup import NearDupIndex, exact_jaccard, find_exact_duplicates, find_near_duplicates, shingles
from tunewise.data.grounding import check_grounding
from tunewise.data.leakage import Leak, apply_leakage_action, find_leaks
from tunewise.records import Example

BASE = "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat near the door"


def ex(i: str, text: str, target: object = "t") -> Example:
    return Example(
        id=i, messages=[{"role": "system", "content": "S"}, {"role": "user", "content": text}], target=target
    )


def test_shingles() -> None:
    assert shingles("A  b C d", 3) == {"a b c", "b c d"}
    assert shingles("Two words", 3) == {"two words"}
    assert shingles("   ", 3) == set()
    assert exact_jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)


def test_exact_duplicates_ignore_case_and_spacing() -> None:
    rows = [ex("a", "Hello  World"), ex("b", "hello world"), ex("c", "hello there")]
    dups = find_exact_duplicates(rows)
    assert [(d.id, d.twin, d.kind) for d in dups] == [("b", "a", "exact")]


def test_near_duplicates_keep_first_and_name_twin() -> None:
    near = BASE.replace("warm", "cosy")  # one word of 19 changed: Jaccard of 3-shingles 14/20
    rows = [ex("a", BASE), ex("b", "completely different words about banking and cards and money"), ex("c", near)]
    found = find_near_duplicates(rows, threshold=0.6)
    assert [(d.id, d.twin) for d in found] == [("c", "a")]
    assert found[0].similarity == pytest.approx(exact_jaccard(shingles(BASE, 3), shingles(near, 3)), abs=0.15)
    assert find_near_duplicates(rows, threshold=0.95) == []


def test_near_dup_index_is_deterministic() -> None:
    def run() -> list[tuple[str, float]]:
        index = NearDupIndex(0.5)
        index.add("a", index.signature(BASE))
        return index.query(index.signature(BASE + " again"))

    assert run() == run() and run()[0][0] == "a"


def test_near_duplicates_on_real_receipts(shared_data: Path) -> None:
    rows = [
        json.loads(line) for line in (shared_data / "sroie" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    examples = [ex(r["id"], r["text"]) for r in rows]
    found = find_near_duplicates(examples, threshold=0.8)
    # Repeated receipts of one chain (README: many near-duplicate layouts): some, not most.
    assert 3 <= len(found) <= 50
    by_id = {r["id"]: r for r in rows}
    for dup in found:
        truth = exact_jaccard(shingles(by_id[dup.id]["text"], 3), shingles(by_id[dup.twin]["text"], 3))
        assert truth >= 0.6, (dup, truth)


def test_leakage_found_and_actions() -> None:
    splits = {
        "train": [ex("t1", BASE), ex("t2", "an unrelated sentence about opening a new bank account online today")],
        "dev": [
            ex("d1", BASE.replace("door", "window")),
            ex("d2", "what is the exchange rate for euros to dollars please"),
        ],
        "test": [ex("x1", BASE)],
    }
    leaks = find_leaks(splits, threshold=0.7)
    assert [(leak.id, leak.split, leak.twin) for leak in leaks] == [("d1", "dev", "t1"), ("x1", "test", "t1")]
    assert apply_leakage_action(splits, leaks, "report") is splits
    dropped = apply_leakage_action(splits, leaks, "drop")
    assert [e.id for e in dropped["dev"]] == ["d2"] and dropped["test"] == [] and len(dropped["train"]) == 2
    moved = apply_leakage_action(splits, leaks, "move")
    assert [e.id for e in moved["train"]] == ["t1", "t2", "d1", "x1"]
    with pytest.raises(ValueError):
        apply_leakage_action(splits, [Leak("d1", "dev", "t1", 1.0)], "delete")


def test_grounding_flags_values_absent_from_input() -> None:
    rows = [
        ex(
            "1",
            "BOOK TA .K SDN BHD\nTOTAL 9.00\n27,JALAN DEDAP 13",
            {"company": "book ta .k  sdn bhd", "total": "9.00", "address": "27, JALAN DEDAP 13"},
        ),
        ex("2", "SHOP B\nTOTAL 3.00", {"company": "SHOP B", "total": "", "address": "SHOP B"}),
    ]
    report = check_grounding(rows).to_dict()
    per = report["per_field"]
    assert per["company"] == {"checked": 2, "ungrounded": 0, "empty": 0, "ungrounded_rate": 0.0}
    assert per["address"]["ungrounded"] == 1 and report["examples"]["address"] == [
        {"id": "1", "value": "27, JALAN DEDAP 13"}
    ]
    assert per["total"] == {"checked": 1, "ungrounded": 0, "empty": 1, "ungrounded_rate": 0.0}
