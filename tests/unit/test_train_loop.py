"""The training loop on the tiny model: what changes, what is learned, what is saved, what is refused."""

from __future__ import annotations

import json

import pytest
import torch

from tests.support.train_project import make_project, tiny_spec
from tunewise.errors import BackendError, InputError
from tunewise.train import loop, train


@pytest.fixture()
def captured(monkeypatch):
    """Keep a handle on the model the loop trains, and a copy of its weights before training."""
    seen: dict = {}
    real = loop.build_lora_model

    def build(spec, device, precision):
        model, tokenizer = real(spec, device, precision)
        seen["model"], seen["tokenizer"] = model, tokenizer
        seen["before"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return model, tokenizer

    monkeypatch.setattr(loop, "build_lora_model", build)
    return seen


def test_only_adapter_weights_change_loss_decreases_and_adapter_reloads(tmp_path, tiny_model_dir, captured):
    project = make_project(tmp_path / "p", n_train=4)
    spec = tiny_spec(
        tiny_model_dir,
        max_steps=15,
        gradient_accumulation=1,
        eval_examples=0,
        learning_rate=5e-2,
        lr_schedule="constant",
    )
    result = train(project, spec, run_name="mem", track=False, progress=False)

    model = captured["model"]
    lora = {n for n, p in model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    for name, param in model.named_parameters():
        changed = not torch.equal(param.detach(), captured["before"][name])
        assert changed == (name in lora), name

    losses = [h["loss"] for h in result.history]
    # the tiny random model's output head is tiny (near-uniform logits, loss ~ln(vocab)) and LoRA does not adapt
    # the head, so the drop is modest but steady
    assert len(losses) == 15 and sum(losses[-3:]) / 3 < losses[0] - 0.15 and losses[-1] < losses[4]

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(result.adapter_dir)
    ).eval()
    model.eval()
    ids = captured["tokenizer"]("SHOP 3 TOTAL 3.50 RM", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)
    meta = json.loads((result.adapter_dir / "metadata.json").read_text())
    assert meta["base_model"] == str(tiny_model_dir) and meta["dataset_hash"] == result.dataset_hash
    assert meta["train_spec"]["rank"] == 4
    assert (result.run_dir / "config.yaml").is_file() and (result.run_dir / "history.jsonl").is_file()


def test_eval_in_the_loop_keeps_best_and_stops_early(tmp_path, tiny_model_dir):
    project = make_project(tmp_path / "p")
    calls: list[tuple[int, float]] = []
    spec = tiny_spec(tiny_model_dir, max_steps=12, eval_every=1, early_stopping_patience=2, learning_rate=1e-4)
    result = train(project, spec, run_name="es", track=False, progress=False, on_eval=lambda s, v: calls.append((s, v)))
    evals = [h for h in result.history if "eval/field_accuracy" in h]
    assert [s for s, _ in calls] == [h["step"] for h in evals]
    # an untrained tiny model scores 0 every time: the first eval is best, two more without improvement stop the run
    assert result.stopped_early and result.final_step == 3 and result.best_step == 1
    assert result.metric_name == "field_accuracy" and result.best_metric == 0.0
    best = json.loads((result.run_dir / "best" / "best.json").read_text())
    assert best["step"] == 1
    assert len(best["per_example"]) == len(set(best["per_example"])) > 0 and set(best["per_example"].values()) == {0.0}


def test_on_eval_can_abort_a_run(tmp_path, tiny_model_dir):
    class Pruned(Exception):
        pass

    def prune(step: int, value: float) -> None:
        raise Pruned

    project = make_project(tmp_path / "p")
    with pytest.raises(Pruned):
        train(project, tiny_spec(tiny_model_dir), run_name="pruned", track=False, progress=False, on_eval=prune)
    assert not (project.state_dir / "adapters" / "pruned").exists()


def test_missing_base_model_is_a_clear_error(tmp_path):
    project = make_project(tmp_path / "p")
    with pytest.raises(BackendError, match="model not found: '/no/such/model'"):
        train(project, tiny_spec(tmp_path, base_model="/no/such/model"), track=False, progress=False)


def test_incompatible_resume_is_refused_and_nothing_is_overwritten(tmp_path, tiny_model_dir):
    project = make_project(tmp_path / "p")
    first = train(
        project, tiny_spec(tiny_model_dir, max_steps=2, eval_examples=0), run_name="r", track=False, progress=False
    )
    before = (first.adapter_dir / "adapter_model.safetensors").read_bytes()
    with pytest.raises(InputError, match=r"incompatible checkpoint.*rank: checkpoint has 4, this run has 8"):
        train(
            project, tiny_spec(tiny_model_dir, rank=8, max_steps=4), resume=first.run_dir, track=False, progress=False
        )
    assert (first.adapter_dir / "adapter_model.safetensors").read_bytes() == before
    with pytest.raises(InputError, match="choose another"):
        train(project, tiny_spec(tiny_model_dir, max_steps=2), run_name="r", track=False, progress=False)


def test_overlength_rows_are_reported(tmp_path, tiny_model_dir):
    project = make_project(tmp_path / "p", n_train=6, long_rows=2)
    result = train(
        project, tiny_spec(tiny_model_dir, max_steps=1, eval_examples=0), run_name="o", track=False, progress=False
    )
    assert result.encode_report == "2 of 8 examples exceed max_length=128 tokens (dropped 2)"
    report = json.loads((result.run_dir / "data_report.json").read_text())
    assert report["dropped"] == 2 and report["overlength_ids"] == ["long0", "long1"]
    with pytest.raises(InputError, match="no training example left"):
        train(project, tiny_spec(tiny_model_dir, max_length=8), run_name="o2", track=False, progress=False)


def _track_in(project, monkeypatch):
    """Track in the project's default store. mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI, and
    tunewise.tracking reads a user's URI once at import: both are reset here so no earlier test's store leaks in."""
    import mlflow

    uri = f"sqlite:///{project.state_dir.resolve() / 'mlflow.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr("tunewise.tracking._USER_TRACKING_URI", None)
    return mlflow.MlflowClient(tracking_uri=uri)


def test_subset_and_mlflow_lineage(tmp_path, tiny_model_dir, monkeypatch):
    project = make_project(tmp_path / "p")
    client = _track_in(project, monkeypatch)
    result = train(project, tiny_spec(tiny_model_dir, max_steps=2), run_name="tracked", subset=5, progress=False)
    again = train(
        project,
        tiny_spec(tiny_model_dir, max_steps=1, eval_examples=0),
        run_name="tracked2",
        subset=5,
        track=False,
        progress=False,
    )
    assert result.dataset_hash == again.dataset_hash
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["dataset_hash"] == result.dataset_hash
    assert run.data.params["rank"] == "4"
    assert "train/loss" in run.data.metrics and "eval/field_accuracy" in run.data.metrics
    versions = client.search_model_versions("name='tiny-lora'")
    assert (
        versions and versions[0].tags["dataset"] == result.dataset_hash and versions[0].run_id == result.mlflow_run_id
    )
    artifacts = [a.path for a in client.list_artifacts(result.mlflow_run_id, "adapter")]
    assert "adapter/adapter_model.safetensors" in artifacts


def test_trains_on_a_dataset_version(tmp_path, tiny_model_dir, monkeypatch):
    from tunewise.data.versions import split_jsonl, store_root, write_version
    from tunewise.examples import load_examples

    project = make_project(tmp_path / "p")
    client = _track_in(project, monkeypatch)
    train_rows = load_examples(project, project.split_path("train"))[:6]
    dev_rows = load_examples(project, project.split_path("dev"))
    digest = "ab" * 32
    write_version(
        store_root(project),
        digest,
        {"train.jsonl": split_jsonl(train_rows), "dev.jsonl": split_jsonl(dev_rows)},
        {"created_at": "2026-01-01"},
    )
    result = train(project, tiny_spec(tiny_model_dir, max_steps=1), dataset="abab", run_name="v", progress=False)
    assert result.dataset_hash == digest
    assert json.loads((result.adapter_dir / "metadata.json").read_text())["dataset_hash"] == digest
    run = client.get_run(result.mlflow_run_id)
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.digest == digest[:36]
    with pytest.raises(InputError, match="no dataset version matches"):
        train(
            project, tiny_spec(tiny_model_dir, max_steps=1), dataset="ffff", run_name="v2", track=False, progress=False
        )


def test_in_loop_scoring_of_a_metric_that_is_not_a_mean(tmp_path):
    from tunewise.config import project_from_dict
    from tunewise.records import Example
    from tunewise.train.evaluate_loop import score_texts

    (tmp_path / "dev.jsonl").write_text('{"id": "a", "text": "x", "label": "yes"}\n')

    def project(metric):
        return project_from_dict(
            {
                "name": "c",
                "task": {"kind": "classify", "labels": ["yes", "no"]},
                "targets": {"metric": metric},
                "data": {"dev": "dev.jsonl", "input_field": "text", "target_field": "label"},
            },
            tmp_path,
        )

    examples = [Example("a", [], "yes"), Example("b", [], "no"), Example("c", [], "no")]
    outputs = ["yes", "yes", "no"]
    assert score_texts(project("macro_f1"), examples, outputs) == (
        "macro_f1",
        pytest.approx(2 / 3),
        None,
    )  # F1 2/3 for each label
    metric, value, per_example = score_texts(project("accuracy"), examples, outputs)
    assert (metric, per_example) == ("accuracy", {"a": 1.0, "b": 0.0, "c": 1.0}) and value == pytest.approx(2 / 3)
