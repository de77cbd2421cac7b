"""tunewise distill: labelling through a misbehaving hosted teacher on loopback, exactly once, under a spend cap;
then the student trained (tiny model) and compared with its teacher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.support.teacher_server import FAULTS, TeacherServer
from tests.support.train_project import tiny_spec
from tunewise.cli.main import app
from tunewise.config import Project, load_project
from tunewise.data import load_version, prepare
from tunewise.decide.advice import distilled_figures
from tunewise.distill import distill
from tunewise.distill.journal import Journal
from tunewise.distill.spend import CapReached, Prices, SpendLedger, prompt_token_bound
from tunewise.egress import EgressError
from tunewise.errors import InputError
from tunewise.records import Completion

LABELS = ["refund", "card_arrival", "transfer"]
TOPICS = {"money back": "refund", "my card": "card_arrival", "send money": "transfer"}
REPO = Path(__file__).resolve().parents[2]


def rule(text: str) -> str:
    """The teacher's knowledge: the label of the topic the message mentions."""
    return next((label for phrase, label in TOPICS.items() if phrase in text), "I'm sorry, I cannot help with that.")


def write_project(root: Path, base_url: str, *, n_train: int = 24, **distill_spec: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    phrases = list(TOPICS)
    train = [
        {
            "id": f"t{i}",
            "text": f"question {i}: about {phrases[i % 3]} for order {i * 7}",
            "label": TOPICS[phrases[i % 3]],
        }
        for i in range(n_train)
    ]
    dev = [
        {"id": f"d{i}", "text": f"dev {i}: {phrases[i % 3]} again", "label": TOPICS[phrases[i % 3]]} for i in range(6)
    ]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    spec = {
        "name": "distill-test",
        "task": {"kind": "classify", "instructions": "Name the intent.", "labels": LABELS},
        "data": {"train": "train.jsonl", "dev": "dev.jsonl", "target_field": "label"},
        "models": {
            "hosted": {
                "backend": "openai",
                "base_url": base_url,
                "model": "teacher-xl",
                "price_in_per_1m": 1000.0,
                "price_out_per_1m": 2000.0,
                "concurrency": 4,
                "timeout_s": 0.5,
                "max_retries": 4,
            }
        },
        "candidates": [{"name": "big", "model": "hosted", "prompt": "k_shot", "k": 2}],
        "distill": {"teacher": "big", **distill_spec},
        "eval": {"max_new_tokens": 8},
    }
    (root / "tunewise.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


@pytest.fixture
def teacher() -> Iterator[TeacherServer]:
    server = TeacherServer(rule, price_in_per_1m=1000.0, price_out_per_1m=2000.0)
    yield server
    server.close()


def journal_events(project: Project, name: str) -> list[dict[str, Any]]:
    path = project.state_dir / "distill" / name / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_fault_is_survived_and_every_input_labelled_once(tmp_path: Path, teacher: TeacherServer) -> None:
    teacher.faults = lambda index: [FAULTS[index % 6], FAULTS[(index // 6) % 6]][: 1 + index % 2]
    project = load_project(write_project(tmp_path / "p", teacher.base_url))

    result = distill(project, name="run", label_only=True, progress=False, track=False)

    assert result.status == "labelled"
    stats = result.labels
    assert stats.inputs == 24 and stats.labelled == 24 and stats.failed == 0 and stats.pending == 0
    done = [e for e in journal_events(project, "run") if e["event"] == "done"]
    assert len(done) == len({e["key"] for e in done}) == 24  # each input's answer recorded once
    assert set(teacher.charged) == {e["key"] for e in done}  # every call billed once, replays unbilled
    assert stats.usd == pytest.approx(teacher.usd, rel=1e-9)  # the ledger is what the teacher billed
    assert teacher.requests >= 24 + 36  # 36 faults of all six kinds (1 or 2 per input), each met and retried
    version = load_version(project, result.dataset_hash or "")
    assert {e.target for e in version.read_split("train")} == set(LABELS)
    card = version.card()
    assert card.provenance is not None and card.provenance["teacher"] == "big"
    assert card.provenance["spend_usd"] == pytest.approx(teacher.usd)
    # The teacher's labels agree with the train split's own gold (measured, never used to filter them).
    assert stats.gold_agreement is not None and stats.gold_agreement.value == 1.0

    before = teacher.requests
    again = distill(project, name="run", label_only=True, progress=False, track=False)
    assert teacher.requests == before and again.labels.sent == 0 and again.labels.resumed == 24
    other = distill(project, name="second", label_only=True, progress=False, track=False)
    assert teacher.requests == before and other.labels.cached == 24 and other.labels.usd == 0


def test_sigkill_mid_run_resumes_without_paying_twice(tmp_path: Path) -> None:
    teacher = TeacherServer(rule, delay_s=0.15)
    try:
        root = write_project(tmp_path / "p", teacher.base_url, n_train=40)
        project = load_project(root)
        code = (
            "from tunewise.config import load_project; from tunewise.distill import distill; "
            f"distill(load_project({str(root)!r}), name='k', label_only=True, progress=False, track=False)"
        )
        child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        journal = project.state_dir / "distill" / "k" / "journal.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if journal.is_file() and journal.read_text().count('"done"') >= 8:
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        state = Journal(journal).replay()
        assert 8 <= len(state.done) < 40

        result = distill(project, name="k", label_only=True, progress=False, track=False)

        assert result.labels.labelled == 40 and result.labels.resumed == len(state.done)
        assert result.labels.in_doubt_resent == len(state.in_doubt)
        done = [e for e in journal_events(project, "k") if e["event"] == "done"]
        assert len({e["key"] for e in done}) == len(done) == 40
        assert len(teacher.charged) == 40 and result.labels.usd == pytest.approx(teacher.usd, rel=1e-9)
    finally:
        teacher.close()


def test_spend_cap_stops_cleanly_and_a_raised_cap_continues(tmp_path: Path, teacher: TeacherServer) -> None:
    root = write_project(tmp_path / "p", teacher.base_url, max_usd=0.6)
    runner = CliRunner()

    capped = runner.invoke(app, ["distill", "-c", str(root), "--name", "c", "--label-only", "--no-track"])

    assert capped.exit_code == 4, capped.output
    assert "stopped at the cap" in capped.output
    project = load_project(root)
    assert 0 < teacher.usd <= 0.6  # never over the cap, whatever was in flight
    result_file = project.state_dir / "distill" / "c" / "result.json"
    first = json.loads(result_file.read_text())
    assert first["status"] == "capped" and first["labels"]["pending"] > 0
    assert first["labels"]["usd"] == pytest.approx(teacher.usd, rel=1e-9)
    billed = set(teacher.charged)

    more = runner.invoke(
        app, ["distill", "-c", str(root), "--name", "c", "--label-only", "--no-track", "--max-usd", "50"]
    )

    assert more.exit_code == 0, more.output
    final = json.loads(result_file.read_text())
    assert final["status"] == "labelled" and final["labels"]["labelled"] == 24
    assert all(teacher.attempts[key] == 1 for key in billed)  # nothing labelled before was sent again
    assert final["labels"]["usd"] == pytest.approx(teacher.usd, rel=1e-9)


def test_a_cap_below_one_call_is_refused_before_any_call(tmp_path: Path, teacher: TeacherServer) -> None:
    project = load_project(write_project(tmp_path / "p", teacher.base_url, max_usd=0.0001))
    with pytest.raises(InputError, match="below the worst case of the cheapest call") as error:
        distill(project, label_only=True, progress=False, track=False)
    assert error.value.field == "distill.max_usd"
    assert teacher.requests == 0


def test_unusable_answers_are_recorded_with_their_reason(tmp_path: Path) -> None:
    teacher = TeacherServer(lambda text: "I'm sorry, I can't." if "money back" in text else rule(text))
    try:
        project = load_project(write_project(tmp_path / "p", teacher.base_url))
        result = distill(project, name="r", label_only=True, progress=False, track=False)
    finally:
        teacher.close()
    assert result.labels.rejected == {"refusal": 8} and result.labels.labelled == 16
    rejected = [json.loads(line) for line in (result.run_dir / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 8 and {r["reason"] for r in rejected} == {"refusal"}
    assert teacher.requests == 24  # answered, not retried forever


def test_hosted_teacher_refused_under_self_hosted_only(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", "http://203.0.113.9/v1")
    spec = yaml.safe_load((root / "tunewise.yaml").read_text())
    spec["targets"] = {"self_hosted_only": True}
    (root / "tunewise.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(EgressError):
        distill(load_project(root), label_only=True, progress=False, track=False)
    assert not (root / ".tunewise" / "distill").exists()


def test_a_teacher_that_is_the_student_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", "http://127.0.0.1:9/v1")
    spec = yaml.safe_load((root / "tunewise.yaml").read_text())
    spec["candidates"].append({"name": "self", "model": "smollm2-135m"})
    spec["distill"]["teacher"] = "self"
    (root / "tunewise.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(InputError, match="is the student") as error:
        distill(load_project(root), label_only=True, progress=False, track=False)
    assert error.value.field == "distill.teacher" and error.value.line is not None


def test_bad_inputs_name_file_line_and_field(tmp_path: Path, teacher: TeacherServer) -> None:
    root = write_project(tmp_path / "p", teacher.base_url, inputs="inputs.jsonl")
    (root / "inputs.jsonl").write_text('{"id": "a", "text": "my card"}\n{"id": "b", "text": 5}\n')
    with pytest.raises(InputError) as error:
        distill(load_project(root), label_only=True, progress=False, track=False)
    assert error.value.line == 2 and error.value.field == "text" and error.value.file.endswith("inputs.jsonl")
    assert teacher.requests == 0


def test_chat_inputs_from_the_request_log_drop_the_served_answer(tmp_path: Path, teacher: TeacherServer) -> None:
    root = write_project(tmp_path / "p", teacher.base_url, inputs="served.jsonl")
    rows = [
        {"messages": [{"role": "user", "content": f"log {i}: send money now"}, {"role": "assistant", "content": "x"}]}
        for i in range(3)
    ]
    (root / "served.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = distill(load_project(root), name="log", label_only=True, progress=False, track=False)
    assert result.labels.labelled == 3 and result.labels.gold_agreement is None
    labelled = [json.loads(line) for line in (result.run_dir / "labelled.jsonl").read_text().splitlines()]
    assert [r["messages"][-1]["content"] for r in labelled] == ["transfer"] * 3
    assert labelled[0]["messages"][0] == {"role": "system", "content": "Name the intent."}


def test_inputs_from_a_dataset_version(tmp_path: Path, teacher: TeacherServer) -> None:
    root = write_project(tmp_path / "p", teacher.base_url, dataset="latest")
    project = load_project(root)
    version = prepare(project, progress=False).version
    result = distill(project, name="v", label_only=True, progress=False, track=False)
    assert result.labels.source == f"dataset {version.hash[:12]} (train)"
    assert result.labels.inputs == len(version.read_split("train")) and result.labels.gold_agreement is not None


def test_student_is_trained_and_compared_with_its_teacher(
    tmp_path: Path, teacher: TeacherServer, tiny_model_dir: Path
) -> None:
    root = write_project(tmp_path / "p", teacher.base_url)
    spec = yaml.safe_load((root / "tunewise.yaml").read_text())
    spec["train"] = tiny_spec(tiny_model_dir, eval_max_new_tokens=4).model_dump(mode="json")
    (root / "tunewise.yaml").write_text(yaml.safe_dump(spec))
    project = load_project(root)

    result = distill(project, name="full", ceiling=True, progress=False, track=True)

    assert result.status == "complete" and result.adapter_dir is not None
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    roles = {side.role for side in result.candidates}
    assert roles == {"teacher", "student", "base", "ceiling"}
    teacher_side = result.side("teacher")
    assert teacher_side is not None and teacher_side.quality.value == 1.0  # the rule is right on every dev example
    assert teacher_side.usd_per_1k_requests is not None and teacher_side.usd_per_1k_requests > 0
    assert result.quality_ratio is not None and 0 <= result.quality_ratio.ci_low <= result.quality_ratio.value
    assert result.prompt_tokens_ratio is not None and result.mlflow_run_id
    report = (result.run_dir / "report.md").read_text()
    assert "student / teacher" in report and "teacher spend" in report
    assert (result.run_dir / "report.html").read_text().count("<img") == 1
    saved = json.loads((result.run_dir / "result.json").read_text())
    assert saved["status"] == "complete" and saved["dataset_hash"] == result.dataset_hash

    assert "measured here by distillation full: the student kept" in distilled_figures(project)
    requests = teacher.requests
    rerun = distill(project, name="full", progress=False, track=False)  # resumes: nothing sent, nothing retrained
    assert teacher.requests == requests and rerun.adapter_dir == result.adapter_dir


def test_ledger_never_lets_reservations_pass_the_cap() -> None:
    ledger = SpendLedger(Prices(1e6, 1e6), max_usd=1.0, max_tokens=None, max_new_tokens=10)
    conversation = [{"role": "user", "content": "héllo"}]
    bound = prompt_token_bound(conversation)
    assert bound >= len("héllo".encode()) and ledger.bound(conversation).usd == pytest.approx((bound + 10) * 1.0)
    small = SpendLedger(Prices(1.0, 1.0), max_usd=0.0001, max_tokens=None, max_new_tokens=10)
    held = [small.reserve(conversation) for _ in range(2)]
    with pytest.raises(CapReached):
        for _ in range(100):
            held.append(small.reserve(conversation))
    assert sum(r.usd for r in held) <= 0.0001
    for reservation in held:
        small.settle(reservation, 3, 2)
    assert small.usd == pytest.approx(len(held) * 5 / 1e6) and small.calls == len(held)
    with pytest.raises(InputError, match="needs the teacher's prices"):
        SpendLedger(None, max_usd=1.0, max_tokens=None, max_new_tokens=4)


def test_journal_replay_ignores_a_torn_line_and_finds_calls_in_doubt(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.sent("a", "1")
    journal.done("a", "1", Completion("x", 3, 1, 5.0), 0.5)
    journal.sent("b", "2")
    journal.sent("c", "3")
    journal.failed("c", "3", "500 after 5 attempts")
    journal.sent("c", "3")
    with open(journal.path, "a") as handle:
        handle.write('{"event": "done", "key": "b", "comp')  # killed mid-write
    state = journal.replay()
    assert set(state.done) == {"a"} and state.usd == 0.5
    assert state.in_doubt == {"b", "c"} and state.failed == {}


def test_a_local_teacher_labels_in_batches_and_stops_at_the_token_cap(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", "http://127.0.0.1:9/v1", max_tokens=400)
    spec = yaml.safe_load((root / "tunewise.yaml").read_text())
    spec["models"]["scripted"] = {"backend": "mock", "outputs": ["refund"]}
    spec["candidates"].append({"name": "scripted", "model": "scripted"})
    spec["distill"]["teacher"] = "scripted"
    (root / "tunewise.yaml").write_text(yaml.safe_dump(spec))
    project = load_project(root)

    capped = distill(project, name="b", label_only=True, progress=False, track=False)

    labels = capped.labels
    assert capped.status == "capped" and 0 < labels.calls < 24 and labels.pending == 24 - labels.calls
    assert labels.tokens <= 400 and labels.sent == labels.calls
    raised = project.spec.model_copy(update={"distill": project.spec.distill.model_copy(update={"max_tokens": None})})
    done = distill(
        Project(raised, project.root, project.spec_file), name="b", label_only=True, progress=False, track=False
    )
    assert done.status == "labelled" and done.labels.resumed == labels.calls and done.labels.labelled == 24
