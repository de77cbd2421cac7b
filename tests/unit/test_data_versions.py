"""prepare -> content-addressed versions: same inputs same hash, atomic writes, refusal on bad input, load/diff."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tunewise.config import CurationSpec, Project, project_from_dict
from tunewise.data import versions as versions_module
from tunewise.data.build import prepare
from tunewise.data.card import CardDuplicate, DatasetCard
from tunewise.data.card_markdown import render_card
from tunewise.data.load import DataProblems
from tunewise.data.versions import diff_versions, list_versions, load_version
from tunewise.errors import InputError

FIXTURES = Path(__file__).with_name("fixtures")
SCHEMA = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("company", "date", "address", "total")},
    "required": ["company", "date", "address", "total"],
    "additionalProperties": False,
}
LINES = (
    "NO 12 JALAN BUKIT BINTANG\n55100 KUALA LUMPUR\nTEL 03-2142 5587\nCASHIER ALI\n"
    "ITEM {item} QTY {qty}\nTOTAL {total}\nTHANK YOU PLEASE COME AGAIN"
)


def receipt(i: int, company: str, total: str, item: str = "KOPI", **extra: Any) -> dict[str, Any]:
    text = f"{company}\n" + LINES.format(item=item, qty=i, total=total)
    fields = {
        "company": company,
        "date": "01/01/2018",
        "address": "NO 12 JALAN BUKIT BINTANG 55100 KUALA LUMPUR",
        "total": total,
    }
    return {"id": f"R{i}", "text": text, "fields": fields, **extra}


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_project(tmp_path: Path, train: list[dict[str, Any]], dev: list[dict[str, Any]] | None = None) -> Project:
    write(tmp_path / "train.jsonl", train)
    data: dict[str, Any] = {"train": "train.jsonl", "input_field": "text", "target_field": "fields"}
    if dev is not None:
        write(tmp_path / "dev.jsonl", dev)
        data["dev"] = "dev.jsonl"
    raw = {"name": "r", "task": {"kind": "extract", "instructions": "Extract.", "output_schema": SCHEMA}, "data": data}
    return project_from_dict(raw, tmp_path)


def train_rows() -> list[dict[str, Any]]:
    shops = ["KEDAI ALPHA", "BETA MART", "GAMMA STORE", "DELTA CAFE", "EPSILON BAKERY", "ZETA HARDWARE"]
    rows = [receipt(i, shop, f"{i}.50", item=f"THING{i} OTHER{i} MORE{i}") for i, shop in enumerate(shops)]
    rows.append(
        {**receipt(6, "KEDAI ALPHA", "0.50", item="THING0 OTHER0 MORE0"), "text": rows[0]["text"].lower()}
    )  # exact dup
    rows.append(receipt(7, "OMEGA SHOP", "3.00"))
    rows[-1]["fields"]["company"] = "OMEGA SHOP SDN BHD"  # not in the text: ungrounded
    return rows


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    dev = [
        receipt(20, "KEDAI ALPHA", "0.50", item="THING0 OTHER0 MORE0"),
        receipt(21, "THETA KIOSK", "9.90", item="UNIQUE WORDS HERE"),
    ]
    return make_project(tmp_path, train_rows(), dev)


def test_prepare_writes_a_complete_version(project: Project) -> None:
    result = prepare(project, CurationSpec(near_dup_threshold=0.7))
    version = result.version
    assert result.created and version.path == project.state_dir / "datasets" / version.hash
    manifest = version.manifest
    assert set(manifest["files"]) == {"train.jsonl", "dev.jsonl", "card.json", "card.md"}
    for name, digest in manifest["files"].items():
        assert versions_module.file_sha256(version.path / name) == digest
    assert [s["split"] for s in manifest["sources"]] == ["train", "dev"] and manifest["params"][
        "near_dup_threshold"
    ] == 0.7
    card = version.card()
    assert ("R6", "R0", "exact") in {(d.id, d.twin, d.kind) for d in card.duplicates}
    assert [(leak.id, leak.twin) for leak in card.leakage.leaks] == [("R20", "R0")]
    assert card.pii.counts["phone"] >= 8 and "Person names" in version.card_markdown()
    assert card.grounding is not None and card.grounding.per_field["company"].ungrounded == 1
    train = version.read_split("train")
    assert "R6" not in {e.id for e in train} and train[0].source.endswith("train.jsonl:1")
    assert "[PHONE]" in train[0].messages[1]["content"] and train[0].messages[0]["content"] == "Extract."


def test_version_hash_is_pinned(project: Project) -> None:
    # The hash names a version on disk and in training lineage: if it moves, every existing version is orphaned.
    # Change it only on purpose (with FORMAT_VERSION), never as a side effect of refactoring.
    assert prepare(project).version.hash == "43919f0b3fc26cd74f9dd4b594352da12fbc60d2933fa590338ffba94cdc5e3c"
    near = prepare(project, CurationSpec(near_dup_threshold=0.7)).version
    assert near.hash == "1ccec873f45794d7955cd4599eb789a02ae097755d3b3bf6e83869705aebf098"


def test_card_round_trips_through_card_json(project: Project) -> None:
    version = prepare(project, CurationSpec(near_dup_threshold=0.7)).version
    text = (version.path / "card.json").read_text(encoding="utf-8")
    card = DatasetCard.from_dict(json.loads(text))
    assert card == version.card()
    assert json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n" == text
    assert (
        card.counts.to_dict() == version.manifest["counts"]
        and [s.to_dict() for s in card.sources] == version.manifest["sources"]
    )
    assert render_card(card) == version.card_markdown()


def test_card_written_before_the_typed_record_reads_and_renders_unchanged() -> None:
    # card-v1.*: written by prepare when the card was still a plain dict (extract, two annotators, a leak, a duplicate).
    text = (FIXTURES / "card-v1.json").read_text(encoding="utf-8")
    card = DatasetCard.from_dict(json.loads(text))
    assert json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n" == text
    assert render_card(card) == (FIXTURES / "card-v1.md").read_text(encoding="utf-8")
    assert isinstance(card.duplicates[0], CardDuplicate) and card.duplicates[0].same_target
    assert card.agreement is not None and card.agreement.per_field["total"].cohen_kappa == 0.8545
    assert card.leakage.leaks[0].similarity == 0.7188 and card.input_chars["dev"].max == 151


def test_same_inputs_same_hash_and_never_rewritten(project: Project) -> None:
    first = prepare(project).version
    stamp = (first.path / "manifest.json").stat().st_mtime_ns
    again = prepare(project)
    assert not again.created and again.version.hash == first.hash
    assert (first.path / "manifest.json").stat().st_mtime_ns == stamp
    other = prepare(project, CurationSpec(seed=1, split="keep")).version
    assert other.hash != first.hash
    assert [v.hash for v in list_versions(project)] == sorted([first.hash, other.hash], key=lambda h: h != first.hash)


def test_load_version_by_prefix_and_latest(project: Project) -> None:
    version = prepare(project).version
    assert load_version(project, version.hash[:8]).hash == version.hash
    assert load_version(project.root, "latest").hash == version.hash
    assert load_version(project.state_dir / "datasets", version.hash).split_path("dev").is_file()
    with pytest.raises(InputError, match="no dataset version matches"):
        load_version(project, "ffff0000")
    with pytest.raises(InputError, match="no 'test' split"):
        version.split_path("test")


def test_bad_input_refuses_and_leaves_earlier_version(project: Project) -> None:
    earlier = prepare(project).version
    before = sorted(p.name for p in (project.state_dir / "datasets").iterdir())
    train = project.root / "train.jsonl"
    rows = train.read_text().splitlines()
    rows[1] = '{"id": "bad", "text": "x"'  # malformed JSON
    rows[2] = json.dumps({"id": "nofields", "text": "x"})  # missing target
    bad_schema = json.loads(rows[3])
    bad_schema["fields"]["total"] = 12  # schema violation
    rows[3] = json.dumps(bad_schema)
    train.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataProblems) as info:
        prepare(project)
    messages = [p.format() for p in info.value.problems]
    assert any(m.endswith("train.jsonl:2: malformed JSON: Expecting ',' delimiter (column 26)") for m in messages)
    assert any(m.endswith("train.jsonl:3: fields: missing target") for m in messages)
    assert any("train.jsonl:4: fields.total: schema violation" in m for m in messages)
    assert sorted(p.name for p in (project.state_dir / "datasets").iterdir()) == before
    assert load_version(project, "latest").hash == earlier.hash


def test_crash_mid_write_leaves_store_unchanged(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = prepare(project).version
    store = project.state_dir / "datasets"
    before = sorted(os.listdir(store))
    calls = []
    real = versions_module._write_file

    def crash_after_first(path: Path, data: str) -> None:
        calls.append(path.name)
        if len(calls) > 1:
            raise KeyboardInterrupt("interrupted mid-write")
        real(path, data)

    monkeypatch.setattr(versions_module, "_write_file", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        prepare(project, CurationSpec(seed=7, split="keep"))
    assert len(calls) == 2 and sorted(os.listdir(store)) == before  # no new version, no temp directory left
    monkeypatch.setattr(versions_module, "_write_file", real)
    assert load_version(project, "latest").hash == earlier.hash
    assert prepare(project, CurationSpec(seed=7, split="keep")).created


def test_diff_between_versions(tmp_path: Path) -> None:
    project = make_project(tmp_path, train_rows())
    old = prepare(project, CurationSpec(split="keep")).version
    rows = train_rows()
    rows[1]["fields"]["total"] = "99.99"
    rows[1]["text"] = rows[1]["text"].replace("1.50", "99.99")
    rows.append(receipt(30, "NEW SHOP", "4.00", item="BRAND NEW ITEMS"))
    del rows[2]
    write(tmp_path / "train.jsonl", rows)
    new = prepare(project, CurationSpec(split="keep")).version
    train = diff_versions(old, new)["splits"]["train"]
    assert train["added"] == ["R30"] and train["removed"] == ["R2"] and train["changed"] == ["R1"]
    assert train["rows"] == {"from": 7, "to": 7}


def test_resplit_group_aware_by_target_path(tmp_path: Path) -> None:
    rows = [receipt(i, f"SHOP {i % 5}", f"{i}.00", item=f"ITEM{i} X{i} Y{i} Z{i}") for i in range(40)]
    project = make_project(tmp_path, rows)
    version = prepare(project, CurationSpec(group_key="target.company", split_ratios=(0.6, 0.2, 0.2))).version
    card = version.card()
    assert card.splitting.mode == "resplit" and card.splitting.groups_across_splits == {}
    seen: dict[str, set[str]] = {}
    for split in version.splits:
        for e in version.read_split(split):
            seen.setdefault(e.target["company"], set()).add(split)
    assert all(len(s) == 1 for s in seen.values()) and len(version.splits) >= 2


def test_annotations_merged_with_agreement_and_queue(tmp_path: Path) -> None:
    rows = []
    for i in range(4):
        for annotator in ("ann1", "ann2"):
            row = receipt(i, f"SHOP {i}", f"{i}.00", item=f"ITEM{i} X{i} Y{i}", annotator=annotator)
            if i == 3 and annotator == "ann2":
                row["fields"]["total"] = "9.99"
            rows.append(row)
    project = make_project(tmp_path, rows)
    version = prepare(project, CurationSpec(annotator_field="annotator", split="keep")).version
    agreement = version.card().agreement
    assert agreement is not None and agreement.per_field["company"].krippendorff_alpha == 1.0
    kappa = agreement.per_field["total"].cohen_kappa
    assert kappa is not None and kappa < 1.0 and agreement.disagreements == 1
    queue = [json.loads(line) for line in (version.path / "disagreements.jsonl").read_text().splitlines()]
    assert queue == [{"id": "R3", "field": "total", "values": {"ann1": "3.00", "ann2": "9.99"}, "split": "train"}]
    assert len(version.read_split("train")) == 4


def test_log_dataset_version_to_mlflow(project: Project, tmp_path: Path) -> None:
    import mlflow

    version = prepare(project).version
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("data-test")
    with pytest.raises(RuntimeError):
        versions_module.log_dataset_version(version)
    with mlflow.start_run() as run:
        versions_module.log_dataset_version(version, split="train")
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert (
        inputs[0].dataset.digest == version.hash[:36]
        and inputs[0].dataset.name == f"tunewise-{version.hash[:12]}-train"
    )
    assert {t.key: t.value for t in inputs[0].tags}["tunewise.dataset_hash"] == version.hash


def test_near_duplicates_dropped_only_when_target_matches(tmp_path: Path) -> None:
    base = receipt(0, "KEDAI ALPHA", "5.00", item="KOPI O KAW KURANG MANIS")
    same = {**receipt(1, "KEDAI ALPHA", "5.00", item="KOPI O KAW KURANG MANIS"), "text": base["text"] + "\nSEE YOU"}
    other = {**receipt(2, "KEDAI ALPHA", "5.00", item="KOPI O KAW KURANG MANIS"), "text": base["text"] + "\nBYE"}
    other["fields"]["total"] = "6.00"
    project = make_project(tmp_path, [base, same, other, receipt(3, "ELSEWHERE", "1.00", item="TEH")])
    card = prepare(project, CurationSpec(near_dup_threshold=0.7, split="keep")).version.card()
    near = {d.id: d for d in card.duplicates if d.kind == "near"}
    assert near["R1"].same_target and not near["R2"].same_target
    assert card.counts.duplicates_dropped == 1 and card.counts.splits["train"] == 3
