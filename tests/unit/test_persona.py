"""Persona consistency: dialogue rows, the context window, scripts, scores, curves, and the whole eval against
actors on a loopback OpenAI-compatible endpoint (one holds its persona, one drifts after a known turn)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.support.loopback import api_root, serve_posts
from tunewise.cli.main import app
from tunewise.config import DecideSpec, ProbeSpec, load_project, project_from_dict
from tunewise.decide import decide
from tunewise.errors import InputError
from tunewise.examples import load_examples
from tunewise.models import MockBackend
from tunewise.persona import PersonaResult, persona_eval
from tunewise.persona.context import fit_context
from tunewise.persona.curve import build_curve
from tunewise.persona.score import distractor_indices, fact_f1, identifiability
from tunewise.persona.script import build_scripts
from tunewise.records import Message
from tunewise.train.collate import encode_conversation, training_messages

JOBS = ["a nurse", "a pilot", "a baker", "a farmer", "a lawyer", "a plumber", "a chef", "a teacher"]
PETS = ["two cats", "a parrot", "three dogs", "a horse", "goldfish", "a snake", "rabbits", "a turtle"]
HOBBIES = ["surfing", "chess", "knitting", "rock climbing", "painting", "jazz piano", "gardening", "astronomy"]
GENERIC = "the weather has been nice lately and the traffic was bad today."
HOLD_EXCHANGES = 6
"""The drifting actor answers in character while fewer than this many exchanges precede the question."""


def persona_of(i: int) -> list[str]:
    return [f"i work as {JOBS[i % 8]}.", f"i have {PETS[(i * 3) % 8]}.", f"i love {HOBBIES[(i * 5) % 8]}."]


def dialogue(i: int, exchanges: int = 4) -> dict[str, Any]:
    turns = []
    for t in range(exchanges):
        answer = persona_of(i)[0] if t == 0 else "ok."
        turns += [
            {"role": "user", "content": f"hi, question {t} of dialogue {i}?"},
            {"role": "assistant", "content": answer},
        ]
    return {"id": f"d{i}", "persona": persona_of(i), "turns": turns}


def write_dialogues(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def project_dict(**persona: Any) -> dict[str, Any]:
    return {
        "name": "persona-test",
        "task": {"kind": "chat", "instructions": "Stay in character."},
        "data": {"train": "train.jsonl", "dev": "dev.jsonl"},
        "persona": persona,
    }


# -- data ---------------------------------------------------------------------------------------------------------


def test_dialogue_rows_become_examples_with_the_persona_in_the_system_prompt(tmp_path: Path) -> None:
    write_dialogues(tmp_path / "dev.jsonl", [dialogue(0), dialogue(1)])
    project = project_from_dict(project_dict(), tmp_path)
    example = load_examples(project, tmp_path / "dev.jsonl")[0]
    assert example.messages[0]["role"] == "system"
    assert example.messages[0]["content"].startswith("Stay in character.")
    assert "- i work as a nurse." in example.messages[0]["content"]
    assert [m["role"] for m in example.messages[1:]] == ["user", "assistant"] * 3 + ["user"]
    assert example.target == "ok."
    assert example.meta["persona"] == persona_of(0)


def test_every_assistant_turn_of_a_dialogue_is_a_training_target(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    write_dialogues(tmp_path / "dev.jsonl", [dialogue(0, exchanges=3)])
    project = project_from_dict(project_dict(), tmp_path)
    example = load_examples(project, tmp_path / "dev.jsonl")[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    encoded = encode_conversation(tokenizer, training_messages(example, example.target))
    labelled = tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label >= 0])
    assert labelled.count("ok.") == 2 and labelled.count("i work as a nurse.") == 1
    assert "question" not in labelled and "Stay in character" not in labelled


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({"persona": ["i am tall."], "turns": [{"role": "assistant", "content": "hi"}]}, "turns[0].role", "'user'"),
        (
            {
                "persona": ["i am tall."],
                "turns": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hey"},
                    {"role": "assistant", "content": "again"},
                ],
            },
            "turns[2].role",
            "alternates",
        ),
        (
            {"persona": [], "turns": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "persona",
            "empty",
        ),
        (
            {"turns": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "persona",
            "needs a persona",
        ),
        ({"persona": ["x."], "turns": [{"role": "user", "content": "a"}]}, "turns[0]", "ends with the assistant"),
        (
            {"persona": ["x."], "turns": [{"role": "user", "content": " "}, {"role": "assistant", "content": "b"}]},
            "turns[0].content",
            "non-empty",
        ),
    ],
)
def test_bad_dialogues_name_file_line_and_turn(tmp_path: Path, row: dict[str, Any], field: str, problem: str) -> None:
    write_dialogues(tmp_path / "dev.jsonl", [dialogue(0), {"id": "bad", **row}])
    project = project_from_dict(project_dict(), tmp_path)
    with pytest.raises(InputError) as caught:
        load_examples(project, tmp_path / "dev.jsonl")
    message = str(caught.value)
    assert f"dev.jsonl:2: {field}:" in message and problem in message


def test_a_spec_level_persona_file_voices_rows_without_their_own(tmp_path: Path) -> None:
    (tmp_path / "voice.txt").write_text("i am the acme support bot.\n\ni never use slang.\n", encoding="utf-8")
    rows = [{"id": "a", "turns": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello."}]}]
    write_dialogues(tmp_path / "dev.jsonl", rows)
    raw = project_dict()
    raw["task"]["persona_file"] = "voice.txt"
    project = project_from_dict(raw, tmp_path)
    example = load_examples(project, tmp_path / "dev.jsonl")[0]
    assert example.meta["persona"] == ["i am the acme support bot.", "i never use slang."]
    assert "- i never use slang." in example.messages[0]["content"]


def test_a_persona_file_on_another_task_kind_is_a_spec_error(tmp_path: Path) -> None:
    (tmp_path / "voice.txt").write_text("polite.\n", encoding="utf-8")
    (tmp_path / "tunewise.yaml").write_text(
        yaml.safe_dump({"name": "x", "task": {"kind": "generate", "persona_file": "voice.txt"}, "data": {}}),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"persona_file applies to task\.kind 'chat'"):
        load_project(tmp_path)


# -- the context window ---------------------------------------------------------------------------------------------


def words(message: dict[str, str]) -> int:
    return len(message["content"].split())


def test_the_oldest_exchanges_go_first_and_the_persona_stays() -> None:
    system = {"role": "system", "content": "persona " * 5}
    turns = []
    for i in range(4):
        turns += [{"role": "user", "content": f"u{i} " * 3}, {"role": "assistant", "content": f"a{i} " * 3}]
    messages = [system, *turns, {"role": "user", "content": "last " * 3}]
    kept, dropped = fit_context(messages, 5 + 3 + 12, words, where="d0: turn 5")
    assert dropped == 2
    assert kept[0] == system and kept[1]["content"].startswith("u2") and kept[-1]["content"].startswith("last")
    assert fit_context(messages, 100, words, where="d0: turn 5") == (messages, 0)


def test_a_turn_that_cannot_fit_with_the_persona_names_the_turn() -> None:
    messages = [{"role": "system", "content": "p " * 10}, {"role": "user", "content": "long " * 50}]
    with pytest.raises(InputError, match=r"d7: turn 12 \(probe\): .*60 tokens, over the context budget of 40"):
        fit_context(messages, 40, words, where="d7: turn 12 (probe)")


# -- scripts, scores, curves ---------------------------------------------------------------------------------------


def test_scripts_continue_with_the_next_dialogues_user_turns(tmp_path: Path) -> None:
    write_dialogues(tmp_path / "dev.jsonl", [dialogue(i, exchanges=2 + i) for i in range(3)])
    examples = load_examples(project_from_dict(project_dict(), tmp_path), tmp_path / "dev.jsonl")
    scripts = build_scripts(examples, 9)
    assert [len(s.user_turns) for s in scripts] == [9, 9, 9]
    assert scripts[0].user_turns[:3] == [f"hi, question {t} of dialogue 0?" for t in range(2)] + [
        "hi, question 0 of dialogue 1?"
    ]
    assert scripts[2].user_turns[4] == "hi, question 0 of dialogue 0?"  # wraps around to the first dialogue
    assert scripts[0].reference_turns == ["i work as a nurse.", "ok."]


def test_identifiability_counts_the_distractors_an_answer_is_nearer_to_its_own_persona_than() -> None:
    own = np.array([[1.0, 0.0], [1.0, 0.0]])
    distractors = np.array([[[0.0, 1.0], [-1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
    answers = np.array([[0.8, 0.6], [0.0, 1.0]])
    hit, rank = identifiability(answers, own, distractors)
    assert hit.tolist() == [1.0, 0.0]
    assert rank.tolist() == [1.0, 0.25]  # the second answer: below one distractor, tied with the other


def test_distractors_are_never_the_conversations_own_persona() -> None:
    personas = [["a."], ["b."], ["A. "], ["c."], ["d."]]
    chosen = distractor_indices(personas, 2, seed=0)
    assert chosen.shape == (5, 2)
    assert not set(chosen[0]) & {0, 2} and not set(chosen[2]) & {0, 2}
    with pytest.raises(ValueError, match="3 distractor personas needed"):
        distractor_indices([["a."], ["a."], ["b."], ["c."]], 3, seed=0)


def test_fact_f1_matches_the_best_persona_line() -> None:
    persona = ["i have two cats.", "i work as a pilot."]
    assert fact_f1("i am a pilot by trade", persona) == pytest.approx(0.5)  # {pilot, trade} vs {work, pilot}
    assert fact_f1("nice weather", persona) == 0.0


def test_a_curve_finds_the_turn_it_drops_and_where_it_holds() -> None:
    rng = np.random.default_rng(0)
    n, turns = 60, [1, 5, 10, 15]
    steady = np.clip(0.8 + rng.normal(0, 0.05, size=(n, 4)), 0, 1)
    dropping = steady.copy()
    dropping[:, 2:] -= 0.3
    flat = build_curve("identifiability_rank", steady, turns, margin=0.05, samples=500, seed=0)
    assert flat.drift_turn is None and all(flat.holds.values())
    drop = build_curve("identifiability_rank", dropping, turns, margin=0.05, samples=500, seed=0)
    assert drop.drift_turn == 10
    assert drop.holds == {"5": True, "10": False, "15": False}
    longer = build_curve("words", dropping * -1, turns, margin=0.05, samples=500, seed=0)
    assert longer.drift_turn == 10  # style: a change either way is drift


# -- the whole eval, against actors on loopback --------------------------------------------------------------------


def actor_reply(body: dict[str, Any]) -> str:
    """``holder`` always speaks from its persona; ``drifter`` only early in a conversation; ``judge`` says yes when
    the reply quoted in its question does not mention the persona's first line."""
    messages = body["messages"]
    where = messages[-1] if body["model"] == "judge" else messages[0]
    lines = [line[2:] for line in where["content"].splitlines() if line.startswith("- ")]
    if body["model"] == "judge":
        reply = messages[-1]["content"].split("The speaker's reply:", 1)[1]
        return "no" if lines[0].rstrip(".") in reply else "yes"
    exchanges = sum(1 for m in messages if m["role"] == "assistant")
    if body["model"] == "holder" or exchanges < HOLD_EXCHANGES:
        return " ".join(lines)
    return GENERIC


@pytest.fixture
def actors() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    def handle(request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        seen.append(body)
        text = actor_reply(body)
        reply = {
            "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10 * len(body["messages"]), "completion_tokens": len(text.split())},
        }
        data = json.dumps(reply).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    httpd = serve_posts(handle)
    try:
        yield api_root(httpd), seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def actor_project(root: Path, base_url: str, n: int = 16) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_dialogues(root / "dev.jsonl", [dialogue(i, exchanges=3) for i in range(n)])
    write_dialogues(root / "train.jsonl", [dialogue(i) for i in range(2)])
    models = {
        name: {"backend": "openai", "base_url": base_url, "model": name, "on_premises": True}
        for name in ("holder", "drifter", "judge")
    }
    raw = project_dict(conversations=n, turns=12, probe_turns=[1, 4, 8, 12], distractors=3, judge="judge")
    raw |= {
        "models": models,
        "candidates": [{"name": "drifts", "model": "drifter"}, {"name": "holds", "model": "holder"}],
        "eval": {"bootstrap_samples": 500},
    }
    (root / "tunewise.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return root


def test_the_eval_finds_when_a_model_drifts_and_that_another_holds(
    tmp_path: Path, actors: tuple[str, list[dict[str, Any]]]
) -> None:
    base_url, seen = actors
    project = load_project(actor_project(tmp_path / "p", base_url))
    result = persona_eval(project, track=False)
    drifts, holds = result.candidate("drifts"), result.candidate("holds")
    # Exchanges before the probe at turn t: t - 1. The drifter leaves its persona at 6 exchanges: turns 8 and 12.
    assert drifts.curve("identifiability").drift_turn == 8
    assert drifts.curve("identifiability").at(4).value == 1.0
    assert drifts.curve("contradiction").drift_turn == 8
    assert holds.curve("identifiability").drift_turn is None
    assert holds.curve("identifiability").holds == {"4": True, "8": True, "12": True}
    late = next(c for c in result.comparisons if c.metric == "identifiability_rank@12")
    assert late.b == "holds" and late.diff > 0.3 and late.p_value < 0.01
    assert result.judge is not None and result.judge.own_rate.value < result.judge.other_rate.value
    # Probes never enter the conversation: every main-line request holds only the dialogue's own user turns.
    main_line = [b for b in seen if b["model"] != "judge" and "yourself" not in b["messages"][-1]["content"]]
    assert all("yourself" not in m["content"] for b in main_line for m in b["messages"])
    report = (result.run_dir / "report.md").read_text(encoding="utf-8")
    assert "falls significantly below turn 1 from turn 8" in report
    assert (result.run_dir / "persona_drift.png").stat().st_size > 1000
    again = PersonaResult.from_dict(json.loads((result.run_dir / "result.json").read_text(encoding="utf-8")))
    assert again.candidate("drifts").curve("identifiability").drift_turn == 8


def test_finished_transcripts_are_reused_not_generated_again(
    tmp_path: Path, actors: tuple[str, list[dict[str, Any]]]
) -> None:
    base_url, seen = actors
    project = load_project(actor_project(tmp_path / "p", base_url, n=6))
    spec = project.spec.persona.model_copy(update={"judge": None, "distractors": 2})
    first = persona_eval(project, spec=spec, track=False, report=False)
    calls = len(seen)
    second = persona_eval(project, spec=spec, track=False, report=False)
    assert len(seen) == calls
    assert second.candidate("holds").curves == first.candidate("holds").curves
    longer = spec.model_copy(update={"max_new_tokens": 20})  # another plan: new transcripts
    persona_eval(project, spec=longer, track=False, report=False)
    assert len(seen) > calls


def test_the_cli_replays_an_adapter_beside_the_base_on_the_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path / "p"
    root.mkdir()
    write_dialogues(root / "dev.jsonl", [dialogue(i, exchanges=2) for i in range(4)])
    adapter = tmp_path / "adapter"
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    )
    model.save_pretrained(adapter)
    raw = project_dict(conversations=4, turns=3, probe_turns=[1, 3], distractors=2, max_new_tokens=4)
    raw |= {
        "models": {"tiny": {"path": str(tiny_model_dir)}},
        "candidates": [{"name": "base", "model": "tiny"}, {"name": "shots", "model": "tiny", "prompt": "k_shot"}],
        "train": {"base_model": str(tiny_model_dir)},
    }
    (root / "tunewise.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    runner = CliRunner()
    out = runner.invoke(app, ["persona", "-c", str(root), "--adapter", str(adapter), "--no-track"])
    assert out.exit_code == 0, out.output
    assert "`base`: persona identifiability" in out.output and "`finetuned-persona`" in out.output
    assert (root / ".tunewise" / "persona" / "dev-4x3" / "report.html").is_file()
    transcripts = list((root / ".tunewise" / "persona" / "transcripts").glob("*.jsonl"))
    assert len(transcripts) == 2  # the base and the adapter
    rows = [json.loads(line) for line in transcripts[0].read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4 and all(len(r["answers"]) == 3 and set(r["probes"]) == {"1", "3"} for r in rows)
    refused = runner.invoke(app, ["persona", "-c", str(root), "--candidate", "shots", "--no-track"])
    assert refused.exit_code == 1 and "only zero-shot, unconstrained candidates apply" in refused.output
    too_long = runner.invoke(app, ["persona", "-c", str(root), "--turns", "2", "--no-track"])
    assert too_long.exit_code == 1 and "--turns" in too_long.output and "probe turn 3 is past" in too_long.output


# -- decide's persona node rests on the drift probe ---------------------------------------------------------------


def in_character_until(exchanges: int | None) -> MockBackend:
    """A model that speaks from the persona in its system prompt while fewer than ``exchanges`` precede (always:
    ``None``)."""

    def respond(conversation: list[Message]) -> str:
        lines = [line[2:] for line in conversation[0]["content"].splitlines() if line.startswith("- ")]
        held = sum(1 for m in conversation if m["role"] == "assistant")
        return " ".join(lines) if exchanges is None or held < exchanges else GENERIC

    return MockBackend(respond=respond)


@pytest.mark.parametrize(
    ("exchanges", "answer", "reason"),
    [(HOLD_EXCHANGES, "yes", "loses it from turn 8"), (None, "no", "holds it over 12 turns")],
)
def test_decide_answers_the_persona_node_from_the_drift_curve(
    tmp_path: Path, exchanges: int | None, answer: str, reason: str
) -> None:
    write_dialogues(tmp_path / "dev.jsonl", [dialogue(i, exchanges=3) for i in range(16)])
    write_dialogues(tmp_path / "train.jsonl", [dialogue(i + 16) for i in range(8)])
    raw = project_dict(conversations=16, turns=12, probe_turns=[1, 4, 8, 12], distractors=3)
    raw |= {"candidates": [{"name": "m", "model": "small"}], "models": {"small": {"backend": "mock", "outputs": ["x"]}}}
    project = project_from_dict(raw, tmp_path)
    spec = DecideSpec(probes=ProbeSpec(chunk=8, max_examples=8, shot_selection="random"), needs={"persona": True})
    d = decide(project, spec=spec, backends={"small": in_character_until(exchanges)}, track=False, sufficiency=False)
    node = d.answer("persona")
    assert node.answer == answer and reason in node.reason, node.reason
    assert not node.declared and [e.label for e in node.evidence] == [
        "zero-shot at turn 1",
        "zero-shot at turn 12",
        "turn 12 − turn 1",
    ]
    assert any(p.name == "persona drift" and p.n == 16 for p in d.probes)


def test_a_prompt_that_never_takes_the_persona_on_does_not_hold_it(tmp_path: Path) -> None:
    write_dialogues(tmp_path / "dev.jsonl", [dialogue(i, exchanges=3) for i in range(16)])
    write_dialogues(tmp_path / "train.jsonl", [dialogue(i + 16) for i in range(8)])
    raw = project_dict(conversations=16, turns=8, probe_turns=[1, 8], distractors=3)
    raw |= {"candidates": [{"name": "m", "model": "small"}], "models": {"small": {"backend": "mock", "outputs": ["x"]}}}
    project = project_from_dict(raw, tmp_path)
    spec = DecideSpec(probes=ProbeSpec(chunk=8, max_examples=8), needs={"persona": True})
    d = decide(project, spec=spec, backends={"small": in_character_until(0)}, track=False, sufficiency=False)
    node = d.answer("persona")
    assert node.answer == "yes" and "never takes it on" in node.reason, node.reason
