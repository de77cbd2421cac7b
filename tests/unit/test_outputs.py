"""Output locations: checked before any work, and only directories tunewise made are ever replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.receipts import receipts_project, right_answer
from tunewise.errors import InputError
from tunewise.eval import evaluate
from tunewise.io.outputs import RUN_MARKER, check_output_dir, check_output_file, check_output_root, is_run_dir
from tunewise.models import MockBackend


class _NeverCalled(MockBackend):
    """A backend that fails the test if the stage generates anything before it has checked its output."""

    def generate(self, *args: object, **kwargs: object):  # type: ignore[override]
        raise AssertionError("generated before the output location was checked")


def _backends() -> dict[str, MockBackend]:
    return {"echo": MockBackend(respond=right_answer), "bad": MockBackend(["no json"])}


# --- the checks themselves -------------------------------------------------------------------------------------


def test_check_output_dir_accepts_a_new_path_an_empty_dir_and_a_run_dir(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty")
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    (run / RUN_MARKER).write_text("{}")
    check_output_dir(run)
    with pytest.raises(InputError, match="not empty"):
        check_output_dir(run, reuse_run_dir=False)


def test_check_output_dir_refuses_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="is the current directory") as error:
        check_output_dir(".")
    assert str(error.value).startswith(".: ")
    with pytest.raises(InputError, match="contains the current directory"):
        check_output_dir(tmp_path.parent)


def test_check_output_dir_refuses_a_file_a_path_under_a_file_and_a_users_directory(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    with pytest.raises(InputError, match="not a directory") as error:
        check_output_dir(file)
    assert str(file) in str(error.value)
    with pytest.raises(InputError, match=f"{file} is not a directory") as error:
        check_output_dir(file / "sub")
    assert str(error.value).startswith(f"{file / 'sub'}: ")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.csv").write_text("1,2")
    with pytest.raises(InputError, match="not a run directory tunewise created"):
        check_output_dir(mine)
    assert file.read_text() == "keep me" and (mine / "data.csv").read_text() == "1,2"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a 0500 directory: the permission check cannot fail")
def test_check_output_dir_refuses_an_unwritable_parent(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InputError, match="not writable"):
            check_output_dir(locked / "run")
        with pytest.raises(InputError, match="permission denied"):
            check_output_root(locked)
    finally:
        locked.chmod(0o700)


def test_check_output_dir_names_the_directory_the_os_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check where the test runs as root: the OS's answer is simulated for one directory."""
    from tunewise.io import outputs

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    with pytest.raises(InputError, match=f"{locked} is not writable"):
        check_output_dir(locked / "run")
    check_output_dir(tmp_path / "elsewhere")


def test_check_output_root_and_file(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("x")
    check_output_root(tmp_path / "runs")
    check_output_file(tmp_path / "out" / "labels.jsonl")
    check_output_file(file)  # a file output replaces a file
    with pytest.raises(InputError, match="not a directory"):
        check_output_root(file)
    with pytest.raises(InputError, match="is a directory"):
        check_output_file(tmp_path)
    with pytest.raises(InputError, match=f"{file} is not a directory"):
        check_output_file(file / "labels.jsonl")


# --- defect 1: eval --out PATH never deletes what tunewise did not make ----------------------------------------------


def test_eval_out_refuses_a_project_directory_and_leaves_it_intact(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    project = receipts_project(tmp_path / "project")
    victim = tmp_path / "other-project"
    victim.mkdir()
    (victim / "tunewise.yaml").write_text("name: precious\n")
    backends = {"echo": _NeverCalled(["x"]), "bad": _NeverCalled(["x"])}
    with pytest.raises(InputError, match="not a run directory tunewise created") as error:
        evaluate(project, out=victim, backends=backends, progress=False, track=False)
    assert str(victim) in str(error.value)
    assert (victim / "tunewise.yaml").read_text() == "name: precious\n"


def test_eval_out_refuses_a_file_and_leaves_it_intact(tmp_path: Path) -> None:
    project = receipts_project(tmp_path)
    file = tmp_path / "results.txt"
    file.write_text("keep me")
    with pytest.raises(InputError, match="not a directory"):
        evaluate(project, out=file, backends=_backends(), progress=False, track=False)
    assert file.read_text() == "keep me"


def test_eval_out_replaces_its_own_earlier_run(tmp_path: Path) -> None:
    project = receipts_project(tmp_path)
    out = tmp_path / "run"
    first = evaluate(project, out=out, backends=_backends(), progress=False, track=False)
    assert is_run_dir(out)
    assert json.loads((out / RUN_MARKER).read_text()) == {"kind": "eval"}
    second = evaluate(project, out=out, backends=_backends(), progress=False, track=False)
    assert json.loads((out / "summary.json").read_text())["run_id"] == second.run_id != first.run_id
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".run")) == []


def test_decide_out_refuses_a_users_directory_before_probing(tmp_path: Path) -> None:
    from tunewise.decide import decide

    project = receipts_project(tmp_path)
    victim = tmp_path / "mine"
    victim.mkdir()
    (victim / "keep.txt").write_text("x")
    backends = {"echo": _NeverCalled(["x"]), "bad": _NeverCalled(["x"])}
    with pytest.raises(InputError, match="not a run directory tunewise created"):
        decide(project, out=victim, backends=backends, track=False)
    assert (victim / "keep.txt").read_text() == "x"


def test_export_force_refuses_a_directory_tunewise_did_not_write(tmp_path: Path) -> None:
    from tunewise.export import export_adapter

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "nowhere"}))
    victim = tmp_path / "mine"
    victim.mkdir()
    (victim / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not a run directory tunewise created"):
        export_adapter(adapter, out_dir=victim, replace=True, gguf=(), progress=False)
    assert (victim / "keep.txt").read_text() == "x"


# --- defect 5: every output location is checked before any work -----------------------------------------------------


@pytest.mark.parametrize("out", [".", "FILE", "FILE/sub"])
def test_eval_checks_out_before_generating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str) -> None:
    project = receipts_project(tmp_path)
    (tmp_path / "FILE").write_text("x")
    monkeypatch.chdir(tmp_path)
    backends = {"echo": _NeverCalled(["x"]), "bad": _NeverCalled(["x"])}
    with pytest.raises(InputError) as error:
        evaluate(project, out=out, backends=backends, progress=False, track=False)
    assert str(error.value).startswith(f"{out}: ")


def test_train_checks_out_before_loading_the_model(tmp_path: Path) -> None:
    from tests.support.train_project import make_project
    from tunewise.config import TrainSpec
    from tunewise.train import train

    project = make_project(tmp_path)
    (tmp_path / "FILE").write_text("x")
    spec = TrainSpec(base_model=str(tmp_path / "no-such-model"))  # loading it would fail with another error
    with pytest.raises(InputError, match="FILE is not a directory"):
        train(project, spec, out_dir=tmp_path / "FILE" / "run", track=False, progress=False)


def test_sample_checks_out_before_embedding(tmp_path: Path) -> None:
    from tunewise.data.sample import sample_file

    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"id": "a", "text": "x"}\n')

    def embed(texts: list[str]) -> object:
        raise AssertionError("embedded before the output was checked")

    with pytest.raises(InputError, match="is a directory"):
        sample_file(pool, tmp_path, 1, embed=embed)


def test_prepare_checks_the_dataset_store_before_curating(tmp_path: Path) -> None:
    from tunewise.data import prepare

    project = receipts_project(tmp_path)
    (tmp_path / ".tunewise").mkdir()
    (tmp_path / ".tunewise" / "datasets").write_text("not a directory")
    with pytest.raises(InputError, match="not a directory"):
        prepare(project, progress=False)


def test_pipeline_checks_every_stage_output_before_the_first_stage(tmp_path: Path) -> None:
    from tunewise.pipeline import run_pipeline

    project = receipts_project(tmp_path)
    (tmp_path / ".tunewise").mkdir()
    (tmp_path / ".tunewise" / "adapters").write_text("not a directory")
    with pytest.raises(InputError, match="adapters: exists and is not a directory"):
        run_pipeline(project, track=False)
    assert not (tmp_path / ".tunewise" / "runs").exists()


# --- defect 2 (second half): a tracking failure leaves no run directory behind ---------------------------------------


def test_a_tracking_failure_leaves_no_eval_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.eval import runner

    def broken_store(*args: object, **kwargs: object) -> str:
        raise RuntimeError("the tracking store is broken")

    monkeypatch.setattr(runner, "log_eval_run", broken_store)
    project = receipts_project(tmp_path)
    out = tmp_path / "runs" / "r1"
    with pytest.raises(RuntimeError, match="tracking store is broken"):
        evaluate(project, out=out, backends=_backends(), progress=False, track=True)
    assert not out.exists()
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_tracking_failure_leaves_no_train_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    from tests.support.train_project import make_project, tiny_spec
    from tunewise.train import lineage, loop, train

    def broken_store(*args: object, **kwargs: object) -> str:
        raise RuntimeError("the tracking store is broken")

    monkeypatch.setattr(loop, "ensure_experiment", broken_store, raising=False)
    monkeypatch.setattr(lineage, "ensure_experiment", broken_store)
    project = make_project(tmp_path)
    spec = tiny_spec(tiny_model_dir)
    with pytest.raises(RuntimeError, match="tracking store is broken"):
        train(project, spec, run_name="r1", track=True, progress=False)
    assert not (tmp_path / ".tunewise" / "runs" / "train-r1").exists()
