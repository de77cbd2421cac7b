"""tunewise refresh: the challenger's data, the gate's two paired tests, alias moves and rollback, the lock, the
cadence, and a real refresh on the tiny model — interrupted after its first checkpoint, then resumed."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.support.train_project import SCHEMA, tiny_spec
from tunewise.cli.main import app
from tunewise.config import Project, load_project
from tunewise.data.versions import DatasetVersion, split_jsonl, store_root, write_version
from tunewise.errors import InputError
from tunewise.examples import load_examples
from tunewise.records import Example
from tunewise.refresh import (
    RefreshBusy,
    cadence,
    check_due,
    non_inferiority,
    promote,
    read_history,
    refresh,
    refresh_lock,
    rollback,
    superiority,
)
from tunewise.refresh.data import build_challenger_data, split_new
from tunewise.refresh.registry import champion, client, get_version
from tunewise.tracking import registered_aliases

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _own_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each project tracks in its own SQLite store: no earlier test's MLFLOW_TRACKING_URI leaks in."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr("tunewise.tracking._USER_TRACKING_URI", None)


def _rows(prefix: str, n: int, word: str = "SHOP") -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i}", "text": f"{word} {i} TOTAL {i}.50", "fields": {"total": f"{i}.50"}, "shop": f"g{i % 5}"}
        for i in range(n)
    ]


def make_project(root: Path, model_dir: Path | str = "tiny", *, n_train: int = 12, **refresh_spec: Any) -> Project:
    """An extraction project on disk with a ``shop`` group field, tiny training and evaluation settings."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows("r", n_train)))
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows("d", 4)))
    spec = {
        "name": "tiny",
        "task": {"kind": "extract", "instructions": "Extract the total.", "output_schema": SCHEMA},
        "data": {"train": "train.jsonl", "dev": "dev.jsonl", "target_field": "fields", "group_field": "shop"},
        "train": tiny_spec(Path(model_dir), max_steps=4, eval_every=1, checkpoint_every=2).model_dump(mode="json"),
        "eval": {"max_new_tokens": 6, "batch_size": 8, "bootstrap_samples": 200},
        "refresh": {"min_new": 8, **refresh_spec},
    }
    (root / "tunewise.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_project(root)


def new_version(project: Project, n: int, *, word: str = "STORE", origin: str = "test") -> DatasetVersion:
    """A dataset version whose train split holds ``n`` newly labelled rows (``origin: label``: imported labels)."""
    path = project.root / f"new-{word}-{n}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows("n", n, word)))
    examples = load_examples(project, path)
    digest = f"{word.lower()}{n}".encode().hex().ljust(64, "0")
    manifest = {"created_at": "x", "origin": origin}
    return write_version(store_root(project), digest, {"train.jsonl": split_jsonl(examples)}, manifest)


def fake_version(project: Project, name: str, *, complete: bool = True) -> str:
    """Register a version whose source is an adapter-shaped directory (no weights needed to move aliases)."""
    directory = project.state_dir / "fake" / name
    directory.mkdir(parents=True)
    if complete:
        (directory / "adapter_config.json").write_text("{}")
        (directory / "adapter_model.safetensors").write_bytes(b"")
    api = client(project)
    model = project.spec.registered_model
    if not api.search_registered_models(f"name='{model}'"):
        api.create_registered_model(model)
    version = api.create_model_version(model, source=directory.resolve().as_uri(), tags={"dataset": name})
    return str(version.version)


def champion_alias(project: Project) -> str | None:
    found = [t.version for t in registered_aliases(project) if t.alias == "champion"]
    return found[0] if found else None


# ---------------------------------------------------------------- challenger data


def _examples(n: int, groups: int) -> list[Example]:
    return [
        Example(f"e{i}", [{"role": "user", "content": f"x {i}"}], {"total": str(i)}, meta={"group": f"g{i % groups}"})
        for i in range(n)
    ]


def test_challenger_data_replay_share_is_exact_and_the_new_slice_is_held_out_by_group(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", replay=0.2, new_eval_share=0.5, min_new=4)
    new = _examples(40, groups=8)
    old = [Example(f"o{i}", [{"role": "user", "content": f"o {i}"}], {}) for i in range(50)]
    golden = old[:3]
    data = build_challenger_data(
        project, new=new, new_ref="new", old_train=old, old_ref="old", golden=golden, golden_ref="g"
    )
    sizes = data.sizes
    assert sizes.new_rows == 40 and sizes.new_train + sizes.new_eval == 40
    assert sizes.new_train == 20 and sizes.new_eval == 20  # 8 groups of 5 rows: whole groups, half of them
    train_groups = {e.meta["group"] for e in data.train if e.id.startswith("e")}
    held_groups = {e.meta["group"] for e in data.new_eval}
    assert train_groups and held_groups and not train_groups & held_groups  # no group on both sides
    replay = [e for e in data.train if e.id.startswith("o")]
    assert len(replay) == sizes.replay and sizes.replay_share == len(replay) / len(data.train)
    assert sizes.replay == 5 and sizes.replay_share == pytest.approx(0.2)  # a fifth of the 25 training rows
    assert data.version.read_split("test") == data.new_eval and data.version.read_split("dev") == golden
    assert data.version.read_split("train") == data.train
    again = build_challenger_data(
        project, new=list(reversed(new)), new_ref="new", old_train=old, old_ref="old", golden=golden, golden_ref="g"
    )
    assert again.version.hash == data.version.hash and again.train == data.train  # deterministic, order-free

    exact = make_project(tmp_path / "q", replay=0.5, min_new=4)
    half = build_challenger_data(
        exact, new=_examples(16, 16), new_ref="n", old_train=old, old_ref="o", golden=golden, golden_ref="g"
    )
    assert half.sizes.replay_share == 0.5 and half.sizes.replay == half.sizes.new_train


def test_a_split_with_an_empty_side_and_too_few_new_rows_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be split"):
        split_new(_examples(6, groups=1), 0.5, seed=0)  # one group: all on one side
    project = make_project(tmp_path / "p", min_new=30)
    with pytest.raises(InputError, match=r"refresh\.min_new"):
        build_challenger_data(
            project, new=_examples(10, 5), new_ref="n", old_train=[], old_ref="o", golden=[], golden_ref="g"
        )


# ---------------------------------------------------------------- the gate


def test_non_inferiority_passes_within_the_margin_and_fails_beyond_it() -> None:
    champion_scores = np.ones(300)
    slightly_worse = champion_scores.copy()
    slightly_worse[:3] = 0  # -0.01
    within = non_inferiority(champion_scores, slightly_worse, 300, margin=0.05, metric="accuracy", seed=1)
    assert within.passed and within.diff == pytest.approx(-0.01) and within.ci_low > -0.05
    assert within.p_value < 0.025 and "non-inferior" in within.reason
    much_worse = champion_scores.copy()
    much_worse[:45] = 0  # -0.15
    beyond = non_inferiority(champion_scores, much_worse, 300, margin=0.05, metric="accuracy", seed=1)
    assert not beyond.passed and beyond.ci_low < -0.05 and beyond.p_value > 0.5
    equal = non_inferiority(champion_scores, champion_scores, 300, margin=0.0, metric="accuracy")
    assert not equal.passed  # a zero margin needs the CI strictly above 0: equal is not enough


def test_superiority_needs_a_positive_difference_with_p_below_alpha() -> None:
    rng = np.random.default_rng(0)
    champion_scores = (rng.random(200) < 0.5).astype(float)
    better = np.maximum(champion_scores, (rng.random(200) < 0.4).astype(float))
    clear = superiority(champion_scores, better, 200, alpha=0.05, metric="accuracy")
    assert clear.passed and clear.diff > 0 and clear.p_value < 0.05 and clear.test == "mcnemar_exact"
    one_more = champion_scores.copy()
    one_more[np.argmin(champion_scores)] = 1  # one example better: not significant
    slight = superiority(champion_scores, one_more, 200, alpha=0.05, metric="accuracy")
    assert not slight.passed and slight.diff > 0 and "not significantly" in slight.reason
    worse = superiority(better, champion_scores, 200, alpha=0.05, metric="accuracy")
    assert not worse.passed and "not better" in worse.reason
    fractions = superiority(champion_scores * 0.5, better * 0.5 + 0.1, 200, alpha=0.05, metric="field_accuracy")
    assert fractions.passed and fractions.test.startswith("sign_flip")


def test_a_metric_that_is_no_mean_is_tested_as_a_statistic() -> None:
    a, b = np.zeros(50), np.ones(50)

    def mean_of(values: np.ndarray) -> Any:
        return lambda w: (w @ values) / w.sum(axis=1)

    test = superiority(mean_of(a), mean_of(b), 50, alpha=0.05, metric="macro_f1")
    assert test.passed and test.test == "paired_bootstrap" and test.diff == pytest.approx(1.0)
    assert non_inferiority(mean_of(b), mean_of(a), 50, margin=0.1, metric="macro_f1").passed is False


# ---------------------------------------------------------------- promotion, rollback, lock, cadence


def test_promotion_moves_the_alias_the_server_reads_and_rollback_restores_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    one, two, three = (fake_version(project, name) for name in ("one", "two", "three"))
    with pytest.raises(InputError, match="nothing to roll back"):
        rollback(project)
    promote(project, version=one, reason="bootstrap")
    assert champion_alias(project) == one
    promote(project, version=two)
    promote(project, version=three)
    assert champion_alias(project) == three
    current = champion(project)
    assert current is not None and current.tags["tunewise.previous_champion"] == two

    back = rollback(project, reason="bad answers on invoices")
    assert back.from_version == three and back.to_version == two and champion_alias(project) == two
    aliases = {t.alias: t.version for t in registered_aliases(project)}
    assert aliases["previous-champion"] == one
    assert rollback(project).to_version == one and champion_alias(project) == one
    with pytest.raises(InputError, match="never promoted over another"):
        rollback(project)
    history = read_history(project)
    assert [(m.action, m.from_version, m.to_version) for m in history] == [
        ("promote", None, one),
        ("promote", one, two),
        ("promote", two, three),
        ("rollback", three, two),
        ("rollback", two, one),
    ]
    assert history[3].reason == "bad answers on invoices"

    half = fake_version(project, "half", complete=False)
    with pytest.raises(InputError, match="not a complete adapter"):
        promote(project, version=half)
    assert champion_alias(project) == one  # a half-written adapter is never pointed at

    runner = CliRunner()
    moved = runner.invoke(app, ["refresh", "promote", "-c", str(project.root), "--version", two])
    assert moved.exit_code == 0, moved.output
    assert f"-> version {two} (was version {one})" in moved.output
    undone = runner.invoke(app, ["refresh", "rollback", "-c", str(project.root)])
    assert undone.exit_code == 0 and champion_alias(project) == one


def test_a_second_refresh_is_refused_naming_the_holder(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from tunewise.config import load_project\n"
            "from tunewise.refresh import refresh_lock\n"
            "with refresh_lock(load_project(sys.argv[1])):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
            str(project.root),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RefreshBusy, match=f"pid {holder.pid}, started .* \\(refresh\\)"):
            refresh(project, dataset="latest")
        with pytest.raises(RefreshBusy, match="another refresh of this project is running"):
            rollback(project)
    finally:
        holder.kill()
        holder.wait()
    # released by the kernel when its holder died; a second holder in this process is refused too
    with refresh_lock(project, "refresh"):
        second = refresh_lock(project, "promote")
        with pytest.raises(RefreshBusy, match=f"pid {os.getpid()}"):
            second.__enter__()


def test_refresh_is_due_by_time_by_drift_and_otherwise_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "p", every="90d")
    assert not check_due(project).due and "no tiny-lora@champion" in check_due(project).reasons[0]
    promote(project, version=fake_version(project, "one"))
    now = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {"value": None}
    monkeypatch.setattr(cadence, "latest_report", lambda _: report["value"])  # the module: tunewise.refresh is the verb
    fresh = check_due(project, now=now)
    assert not fresh.due and "due at" in fresh.describe()
    old = check_due(project, now=now + dt.timedelta(days=91))
    assert old.due and "over 90d" in old.describe()

    stamp = (now + dt.timedelta(seconds=5)).isoformat()
    report["value"] = SimpleNamespace(verdict="drift", created_at=stamp, run_dir=Path("m/1"))
    drifted = check_due(project, now=now)
    assert drifted.due and "says drift" in drifted.describe()
    report["value"] = SimpleNamespace(verdict="drift", created_at="2000-01-01T00:00:00+00:00", run_dir=Path("m/0"))
    assert not check_due(project, now=now).due  # a drift report older than the champion is about another model
    report["value"] = SimpleNamespace(verdict="watch", created_at=stamp, run_dir=Path("m/2"))
    assert not check_due(project, now=now).due

    report["value"] = SimpleNamespace(verdict="drift", created_at=stamp, run_dir=Path("m/1"))
    due = CliRunner().invoke(app, ["refresh", "--check", "-c", str(project.root)])
    assert due.exit_code == 3 and "refresh due" in due.output
    report["value"] = None
    assert CliRunner().invoke(app, ["refresh", "--check", "-c", str(project.root)]).exit_code == 0


# ---------------------------------------------------------------- a real refresh on the tiny model


def _train_champion(project: Project) -> str:
    from tunewise.data import prepare
    from tunewise.train import train

    version = prepare(project, progress=False).version
    spec = project.spec.train.model_copy(update={"max_steps": 2})
    result = train(project, spec, dataset=version.hash, run_name="first", progress=False)
    promote(project, adapter=result.adapter_dir.name, reason="first champion")
    current = champion(project)
    assert current is not None and current.dataset == version.hash
    return current.version


def test_too_few_new_rows_is_an_error_and_nothing_is_trained(tmp_path: Path, tiny_model_dir: Path) -> None:
    project = make_project(tmp_path / "p", tiny_model_dir, min_new=16)
    first = _train_champion(project)
    with pytest.raises(InputError, match="no labelled dataset version yet"):
        refresh(project, progress=False)
    few = new_version(project, 5, origin="label")
    adapters = sorted(p.name for p in (project.state_dir / "adapters").iterdir())
    with pytest.raises(InputError, match=f"only 5 new labelled rows in {few.hash[:12]}"):
        refresh(project, progress=False)  # the label stage's latest version by default
    assert sorted(p.name for p in (project.state_dir / "adapters").iterdir()) == adapters
    assert champion_alias(project) == first
    with pytest.raises(InputError, match="is the one the champion was trained on"):
        refresh(project, dataset=champion(project).dataset, progress=False)  # type: ignore[union-attr]


def test_refresh_interrupted_after_a_checkpoint_resumes_and_records_its_decision(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunewise.refresh import run as refresh_run
    from tunewise.train import loop

    project = make_project(tmp_path / "p", tiny_model_dir, min_new=8, margin=0.99, alpha=0.5)
    first = _train_champion(project)
    labels = new_version(project, 20)

    class Killed(Exception):
        pass

    real_train = refresh_run.train
    seen: dict[str, Any] = {}

    def killed_after_first_checkpoint(*args: Any, **kwargs: Any) -> Any:
        def stop(step: int, value: float) -> None:
            if step == 3:  # the checkpoint of step 2 is on disk; step 3's is not
                seen["aliases"] = champion_alias(project)
                seen["versions"] = len(client(project).search_model_versions("name='tiny-lora'"))
                raise Killed

        return real_train(*args, **kwargs, on_eval=stop)

    monkeypatch.setattr(refresh_run, "train", killed_after_first_checkpoint)
    with pytest.raises(Killed):
        refresh(project, dataset=labels.hash, progress=False)
    assert seen == {"aliases": first, "versions": 1}  # mid-training: the alias and the registry untouched
    runs = list((project.state_dir / "runs").glob("train-challenger-*"))
    assert len(runs) == 1 and [p.name for p in (runs[0] / "checkpoints").glob("step-*")] == ["step-000002"]
    assert not (project.state_dir / "adapters" / runs[0].name.removeprefix("train-")).exists()
    assert champion_alias(project) == first

    monkeypatch.setattr(refresh_run, "train", real_train)
    steps = {"n": 0}
    real_step = loop._optimizer_step

    def counted(*args: Any, **kwargs: Any) -> Any:
        steps["n"] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "_optimizer_step", counted)
    started = time.perf_counter()
    decision = refresh(project, dataset=labels.hash, progress=False)
    assert steps["n"] == 2  # steps 3 and 4 only: resumed from the checkpoint, not restarted
    assert decision.resumed and decision.champion_version == first and decision.challenger_version != first
    assert decision.new_dataset == labels.hash and decision.sizes.new_rows == 20
    assert decision.golden.n == 4 and decision.new_slice.n == decision.sizes.new_eval
    assert decision.golden.kind == "non_inferiority" and decision.new_slice.kind == "superiority"
    assert decision.timings["total"] <= time.perf_counter() - started + 1
    config = yaml.safe_load((runs[0] / "config.yaml").read_text())  # warm start: from the champion's weights
    assert Path(config["train"]["init_adapter"]) == get_version(project, first).adapter_dir

    # whatever the tiny model scored, the record says what was done, and the alias agrees with it
    expected = decision.challenger_version if decision.promoted else first
    assert champion_alias(project) == expected
    assert decision.promoted == (decision.golden.passed and decision.new_slice.passed)
    saved = json.loads((decision.run_dir / "decision.json").read_text())  # type: ignore[operator]
    assert saved["promoted"] == decision.promoted and saved["golden"]["margin"] == 0.99
    report = (decision.run_dir / "report.md").read_text()  # type: ignore[operator]
    assert "non-inferiority" in report and "superiority" in report
    run = client(project).get_run(decision.mlflow_run_id)
    assert run.data.tags["tunewise.stage"] == "refresh"
    if decision.promoted:
        assert read_history(project)[-1].decision_id == decision.decision_id
        assert rollback(project).to_version == first and champion_alias(project) == first
