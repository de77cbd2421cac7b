"""tunewise monitor: the drift statistics on synthetic vectors, verdicts and buckets, version filtering, output
drift on crafted answers, and one run end to end on a tiny project with the real MiniLM embedder."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.config import Band, MonitorThresholds, load_project, project_from_dict
from tunewise.errors import InputError
from tunewise.metrics import MetricContext
from tunewise.metrics.refusal import is_refusal
from tunewise.monitor import latest_report, load_traffic, monitor
from tunewise.monitor.outputs import OutputReference, output_signals
from tunewise.monitor.record import SignalResult
from tunewise.monitor.signals import novelty_signal
from tunewise.monitor.stats import (
    domain_classifier_auc,
    holm,
    label_shift,
    mmd_permutation_test,
    novel_share,
    proportion_difference_ci,
    two_proportion_test,
)
from tunewise.monitor.traffic import TrafficRow
from tunewise.monitor.verdict import band_status, judge, worst
from tunewise.monitor.windows import bucket_edges, split_rows
from tunewise.records import Example
from tunewise.serve.requestlog import LoggedRequest, RequestLog

LABELS = ["refund", "card_arrival", "transfer"]
DAY = 86400.0
T0 = 1_750_000_000.0


# --- statistics on synthetic vectors -------------------------------------------------------------------------------


def test_mmd_pvalues_under_the_null_are_not_concentrated_near_zero() -> None:
    pvalues = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
        pvalues.append(mmd_permutation_test(x, y, permutations=200, seed=seed).p_value)
    assert np.mean(np.array(pvalues) < 0.05) < 0.10
    assert 0.3 < np.median(pvalues) < 0.7  # roughly uniform, not piled at 0 or 1


def test_domain_classifier_under_the_null_rarely_excludes_half() -> None:
    excluded = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        result = domain_classifier_auc(rng.normal(size=(80, 6)), rng.normal(size=(40, 6)), bootstrap=200, seed=seed)
        excluded += result.ci_low > 0.5
    assert excluded <= 2


def test_a_shifted_cluster_is_detected() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(120, 10))
    window = rng.normal(size=(50, 10))
    window[:, :3] += 1.5  # a new cluster, off in three dimensions
    mmd = mmd_permutation_test(reference, window, permutations=500, seed=0)
    auc = domain_classifier_auc(reference, window, bootstrap=300, seed=0)
    assert mmd.p_value < 0.01 and mmd.mmd2 > 0
    assert auc.ci_low > 0.5 and auc.auc > 0.8
    assert len(auc.scores) == 50


def test_holm_on_a_known_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    assert holm([0.01, 0.04, None, 0.03, 0.005]) == pytest.approx([0.03, 0.06, None, 0.06, 0.02])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_novel_share_finds_a_new_minority_and_stays_calm_without_one() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(8, 32))
    reference = centres[rng.integers(0, 8, 400)] + 0.3 * rng.normal(size=(400, 32))
    calm = [centres[rng.integers(0, 8, 120)] + 0.3 * rng.normal(size=(120, 32)) for _ in range(20)]
    alarms = [novelty_signal(reference, window).p_value < 0.01 for window in calm]
    assert sum(alarms) <= 1
    k_ref, n_ref = novel_share(reference, calm[0])[2:4]
    assert abs(k_ref / n_ref - 0.05) < 0.01  # the cut is the reference's own 95th percentile
    new = rng.normal(size=(1, 32)) + 0.3 * rng.normal(size=(30, 32))  # a quarter of the window is a new kind
    shifted = np.concatenate([calm[0][:90], new])
    signal = novelty_signal(reference, shifted)
    assert signal.window_value >= 0.25 and signal.p_value < 0.001 and signal.ci_low > 0.1


def test_rate_and_label_tests() -> None:
    assert two_proportion_test(10, 100, 10, 100) == pytest.approx(1.0)
    assert two_proportion_test(0, 100, 20, 100) < 0.001  # small cells: Fisher's exact test
    assert two_proportion_test(100, 500, 150, 500) < 0.01
    low, high = proportion_difference_ci(10, 100, 30, 100)
    assert low < 0.2 < high and low > 0
    tv, tv_low, tv_high, p = label_shift(["a"] * 50 + ["b"] * 50, ["a"] * 90 + ["b"] * 10, bootstrap=200)
    assert tv == pytest.approx(0.4) and tv_low < 0.4 < tv_high and p == pytest.approx(1 / 201)  # no permutation as far
    assert label_shift(["a", "b"] * 30, ["a", "b"] * 30, bootstrap=50)[3] == pytest.approx(1.0)
    # many labels seen a few times each, the same distribution on both sides: no false alarm
    rng = np.random.default_rng(0)
    labels = [f"l{i}" for i in range(20)]
    p_values = [
        label_shift(list(rng.choice(labels, 130)), list(rng.choice(labels, 100)), bootstrap=200)[3] for _ in range(20)
    ]
    assert sum(p < 0.05 for p in p_values) <= 3


# --- verdicts and buckets ------------------------------------------------------------------------------------------


def signal(name: str, effect: float, p: float) -> SignalResult:
    return SignalResult(name=name, group="input", effect=effect, p_value=p)


def test_verdict_bands_need_both_significance_and_effect() -> None:
    band = Band(watch=0.6, drift=0.7)
    assert band_status(0.65, band, significant=True) == "watch"
    assert band_status(0.75, band, significant=True) == "drift"
    assert band_status(0.55, band, significant=True) == "ok"
    assert band_status(0.95, band, significant=False) == "ok"
    judged = judge(
        [signal("input_auc", 0.9, 0.001), signal("empty_inputs", 0.2, 0.004), signal("input_length", 2.0, 0.2)],
        MonitorThresholds(),
        alpha=0.01,
    )
    # Holm: 0.001*3 = 0.003 (drift), 0.004*2 = 0.008 (drift), 0.2 (big effect, not significant: ok)
    assert [s.status for s in judged] == ["drift", "drift", "ok"]
    assert [s.p_adjusted for s in judged] == pytest.approx([0.003, 0.008, 0.2])
    # The same second p-value among more tests is no longer significant after the correction.
    more = judge([signal("input_auc", 0.9, 0.004), *[signal("refusals", 0.5, 0.004)] * 3], MonitorThresholds(), 0.01)
    assert worst(more) == "ok"
    assert worst([SignalResult(name="quality", group="quality", effect=None, status="too_few")]) == "ok"


def test_buckets() -> None:
    edges = bucket_edges(T0, T0 + 10 * DAY, 7 * DAY)
    assert edges == [(T0, T0 + 7 * DAY), (T0 + 7 * DAY, T0 + 10 * DAY)]
    rows = [row(f"r{i}", T0 + i * DAY) for i in range(11)]
    parts = split_rows(rows, edges)
    assert [len(p) for p in parts] == [7, 4]  # the last bucket keeps a row at its very end
    with pytest.raises(ValueError, match="buckets"):
        bucket_edges(T0, T0 + 1000 * DAY, 1.0)


def row(rid: str, created: float, output: str | None = None, **fields: Any) -> TrafficRow:
    example = Example(id=rid, messages=[{"role": "user", "content": f"text {rid}"}], target=None)
    return TrafficRow(id=rid, created=created, example=example, output=output, **fields)


# --- traffic: version filtering and JSONL errors -------------------------------------------------------------------


def classify_spec(root: Path, **monitor_spec: Any) -> dict[str, Any]:
    return {
        "name": "mon",
        "task": {"kind": "classify", "instructions": "Name the intent.", "labels": list(LABELS)},
        "data": {"train": "train.jsonl", "dev": "dev.jsonl", "target_field": "label"},
        "models": {"watched": {"backend": "mock", "outputs": list(LABELS)}},
        "candidates": [{"name": "champ", "model": "watched"}],
        "monitor": {"permutations": 1000, "min_examples": 30, **monitor_spec},
    }


TOPICS = {
    "refund": ["I want my money back for {x}", "please refund the {x} I returned", "refund request for {x}"],
    "card_arrival": ["my new card for {x} has not arrived", "when will the card for {x} arrive", "card for {x} lost"],
    "transfer": ["send money to {x} abroad", "how do I transfer funds to {x}", "the transfer to {x} is pending"],
}
NAMES = ["Alice", "my landlord", "the shop", "Bob", "my sister", "a friend", "the garage", "my savings account"]
RECIPES = [
    "how long should I bake sourdough bread at {n} degrees",
    "can I replace butter with olive oil in a cake for {n} people",
    "what wine goes with grilled salmon for {n} guests",
    "how many minutes to boil {n} eggs until soft",
]


def banking(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(LABELS)
    return rng.choice(TOPICS[label]).format(x=rng.choice(NAMES)), label


def write_data(root: Path, *, n_train: int = 80, n_dev: int = 40) -> None:
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("dev", n_dev)):
        rows = []
        for i in range(n):
            text, label = banking(rng)
            rows.append({"id": f"{name}{i}", "text": text, "label": label})
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rows_of_another_model_version_are_counted_not_compared(tmp_path: Path) -> None:
    write_data(tmp_path)
    project = project_from_dict(classify_spec(tmp_path), tmp_path)
    db = tmp_path / "requests.db"
    with RequestLog(db) as log:
        for i in range(20):
            version = "old-sha" if i < 8 else "new-sha"  # the newest rows are the current version's
            log.write(
                LoggedRequest(
                    request_id=f"q{i}",
                    created=T0 + i * 60,
                    model="watched",
                    model_version=version,
                    messages=[{"role": "user", "content": f"refund order {i}"}],
                    output="refund",
                    latency_ms=5.0,
                )
            )
    traffic = load_traffic(project, source=db, model="watched")
    assert traffic.model_version == "new-sha"
    assert {r.model_version for r in traffic.rows} == {"new-sha"} and len(traffic.rows) == 12
    assert traffic.skipped == {"other_version": 8}
    report = monitor(project, source=db, model="watched", progress=False, track=False)
    assert report.verdict == "too_few" and report.n_window == 12 and report.skipped == {"other_version": 8}
    assert [b.status for b in report.buckets] == ["too_few"] and not report.signals
    assert "8 answered by another model version" in (report.run_dir / "report.md").read_text()


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"id": "a", "text": "hello"}, "created"),
        ({"id": "a", "text": "hello", "created": "yesterday"}, "created"),
        ({"id": "a", "text": "hello", "created": 1.0, "model_version": 3}, "model_version"),
    ],
)
def test_jsonl_traffic_errors_name_file_line_and_field(tmp_path: Path, line: dict[str, Any], field: str) -> None:
    write_data(tmp_path)
    project = project_from_dict(classify_spec(tmp_path), tmp_path)
    path = tmp_path / "traffic.jsonl"
    path.write_text(json.dumps({"id": "ok", "text": "fine", "created": T0}) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(InputError) as error:
        load_traffic(project, source=path)
    assert f"{path}:2" in str(error.value) and field in str(error.value)


# --- output drift on crafted answers -------------------------------------------------------------------------------


SCHEMA = {
    "type": "object",
    "properties": {"company": {"type": ["string", "null"]}, "total": {"type": ["string", "null"]}},
    "required": ["company", "total"],
    "additionalProperties": False,
}


def test_a_validity_drop_is_detected() -> None:
    ctx = MetricContext(kind="extract", schema=SCHEMA)
    good = json.dumps({"company": "ACME", "total": "9.00"})
    reference = OutputReference(kind="model", outputs=[good] * 100, tokens=[12] * 100)
    rows = [
        row(f"w{i}", T0 + i, good if i % 5 else "Sorry, I cannot read this receipt.", completion_tokens=12)
        for i in range(60)
    ]
    rows += [row(f"s{i}", T0 + 100 + i, good, schema_valid=False, completion_tokens=12) for i in range(10)]
    signals = {
        s.name: s for s in judge(output_signals(ctx, reference, rows, bootstrap=200, seed=0), MonitorThresholds(), 0.01)
    }
    validity = signals["output_validity"]
    assert validity.reference_value == 1.0 and validity.window_value == pytest.approx(48 / 70)
    assert validity.effect == pytest.approx(22 / 70) and validity.status == "drift"
    assert signals["output_length"].detail["unit"] == "completion tokens"
    assert signals["null_fields"].status == "ok" and signals["refusals"].effect == pytest.approx(12 / 70)


def test_a_label_distribution_shift_is_detected_and_gold_is_the_fallback() -> None:
    ctx = MetricContext(kind="classify", labels=LABELS)
    reference = OutputReference(kind="gold", targets=LABELS * 30)
    shifted = [row(f"w{i}", T0 + i, "Refund." if i % 10 else "transfer") for i in range(60)]
    signals = judge(output_signals(ctx, reference, shifted, bootstrap=200, seed=0), MonitorThresholds(), 0.01)
    assert [s.name for s in signals] == ["label_shift"]  # gold: no validity, refusals or length to compare
    shift = signals[0]
    assert shift.effect == pytest.approx(0.9 - 1 / 3) and shift.status == "drift"
    assert shift.detail["window_counts"] == {"refund": 54, "transfer": 6}
    same = [row(f"w{i}", T0 + i, LABELS[i % 3]) for i in range(60)]
    assert (
        judge(output_signals(ctx, reference, same, bootstrap=200, seed=0), MonitorThresholds(), 0.01)[0].status == "ok"
    )


def test_refusal_detection_is_shared_with_distill() -> None:
    assert is_refusal("  I'm sorry, but I can't help with that.")
    assert is_refusal("As an AI language model, I cannot")
    assert not is_refusal("refund")


# --- end to end ----------------------------------------------------------------------------------------------------


def write_project(root: Path) -> Path:
    write_data(root)
    (root / "tunewise.yaml").write_text(yaml.safe_dump(classify_spec(root), sort_keys=False))
    return root


def write_traffic(path: Path, *, drifted: bool, n: int = 60, seed: int = 1) -> Path:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text = rng.choice(RECIPES).format(n=rng.randint(2, 12)) if drifted else banking(rng)[0]
        created = T0 + i * (10 * DAY / n)  # ten days: a 7-day bucket of 42 rows, then a 3-day one of 18
        rows.append({"id": f"p{i}", "text": text, "created": created, "output": LABELS[i % 3]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_monitor_end_to_end_and_exit_codes(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    calm = write_traffic(tmp_path / "calm.jsonl", drifted=False)
    drifted = write_traffic(tmp_path / "drift.jsonl", drifted=True)
    runner = CliRunner()

    ok = runner.invoke(app, ["monitor", "-c", str(root), "--traffic", str(calm), "--model", "watched", "--no-track"])
    assert ok.exit_code == 0, ok.output
    project = load_project(root)
    report = latest_report(project)
    assert report is not None and report.verdict in ("ok", "watch")
    assert report.n_window == 60 and report.output_reference == "model"
    assert report.signal("input_auc") is not None and report.signal("input_auc").status == "ok"  # type: ignore[union-attr]

    bad = runner.invoke(
        app, ["monitor", "-c", str(root), "--traffic", str(drifted), "--model", "watched", "--no-track"]
    )
    assert bad.exit_code == 3, bad.output
    assert "drift" in bad.output
    report = latest_report(project)
    assert report is not None and report.verdict == "drift"
    auc = report.signal("input_auc")
    assert auc is not None and auc.status == "drift" and auc.ci_low is not None and auc.ci_low > 0.7
    assert auc.p_adjusted is not None and auc.p_adjusted <= 0.01
    assert [b.n for b in report.buckets] == [42, 18]
    assert report.buckets[0].status == "drift" and report.buckets[1].status == "too_few"
    assert len(report.top_examples) == 10 and all(e.id.startswith("p") for e in report.top_examples)
    assert len(report.embedding_map["window"]) == 60
    for name in ("report.json", "report.md", "report.html", "trend.png", "embedding_map.png"):
        assert (report.run_dir / name).is_file(), name
    html = (report.run_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and "input_auc" in html
    assert json.loads((report.run_dir / "report.json").read_text())["verdict"] == "drift"

    # Labelled production examples are scored against the champion's dev figure (the hook the label stage feeds).
    labelled = {f"p{i}": LABELS[(i + 1) % 3] for i in range(40)}  # the served answers are all wrong on these
    scored = monitor(project, source=drifted, model="watched", labelled=labelled, progress=False, track=False)
    quality = scored.signal("quality")
    assert scored.quality is not None and scored.quality.value == 0.0 and scored.quality.n == 40
    assert quality is not None and quality.status == "drift" and scored.champion_metric is not None


def test_too_few_requests_exit_zero(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    traffic = write_traffic(tmp_path / "few.jsonl", drifted=True, n=12)
    result = CliRunner().invoke(app, ["monitor", "-c", str(root), "--traffic", str(traffic), "--no-track"])
    assert result.exit_code == 0, result.output
    assert "too_few" in result.output and "Too few examples" in result.output
