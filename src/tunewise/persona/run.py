"""``persona_eval``: replay held-out dialogues turn by turn with every candidate and measure persona drift."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from tunewise import embeddings
from tunewise.config import CandidateSpec, ModelSpec, PersonaSpec, Project
from tunewise.errors import InputError
from tunewise.examples import load_examples, spread_order
from tunewise.io.atomic import atomic_write_text
from tunewise.metrics.stats import mean_ci
from tunewise.models.base import Backend, close_backend
from tunewise.models.registry import create_backend
from tunewise.persona.curve import DIRECTIONS, build_curve, compare_candidates
from tunewise.persona.judge import judge_replies
from tunewise.persona.measure import probe_answers, score_matrices
from tunewise.persona.record import RESULT_FILE, CandidateCurves, JudgeCheck, PersonaResult
from tunewise.persona.report import log_persona, write_persona_report
from tunewise.persona.rollout import RolloutPlan, Transcript, roll_out
from tunewise.persona.score import distractor_indices, fact_f1, uppercase_share, words
from tunewise.persona.script import Script, build_scripts
from tunewise.report.progress import ProgressDisplay

CONTEXT_TOKENS = 4096
"""The context a conversation may fill (llama.cpp's slot size); older exchanges are dropped beyond it."""


def persona_eval(
    project: Project,
    *,
    candidates: list[CandidateSpec] | None = None,
    extra_models: dict[str, ModelSpec] | None = None,
    spec: PersonaSpec | None = None,
    name: str | None = None,
    split: str = "dev",
    backends: dict[str, Backend] | None = None,
    progress: bool = True,
    track: bool = True,
    report: bool = True,
) -> PersonaResult:
    """Run the consistency eval: every candidate replays the same conversations; curves, tests and a report.

    Args:
        candidates: default: the spec's ``persona.candidates``, else every zero-shot candidate.
        extra_models: models the candidates use that the spec does not declare (a trained adapter).
        spec: default: the spec's ``persona:`` section.
        name: the run directory under ``.tunewise/persona`` (default: split, conversations and turns).
        backends: ready backends by model name (left open); others are created and closed here.

    Finished transcripts are kept under ``.tunewise/persona/transcripts``, keyed by the model's identity, the plan
    and the scripts: any later run (another name, decide's probe) reuses them instead of generating again.

    Raises:
        InputError: no dialogue data, a candidate with another prompt than zero-shot, a turn that does not fit.
    """
    spec = spec or project.spec.persona
    models = {**(extra_models or {})}
    chosen = _candidates(project, spec, candidates)
    examples = spread_order(load_examples(project, project.split_path(split)), seed=spec.seed)
    if len(examples) < spec.conversations:
        raise InputError(
            f"{spec.conversations} conversations asked for, the {split} split has {len(examples)} dialogues",
            file=project.split_path(split),
        )
    scripts = build_scripts(examples[: spec.conversations], spec.turns)
    plan = RolloutPlan(spec.turns, spec.probe_turns, spec.probes, spec.max_new_tokens, CONTEXT_TOKENS)
    run_dir = project.state_dir / "persona" / (name or f"{split}-{len(scripts)}x{spec.turns}")
    transcripts: dict[str, list[Transcript]] = {}
    display = ProgressDisplay("persona", enabled=progress).start()
    try:
        for candidate in chosen:
            given = (backends or {}).get(candidate.model)
            model = models.get(candidate.model) or project.spec.model_spec(candidate.model)
            backend = given or create_backend(candidate.model, model, project)
            try:
                store = project.state_dir / "persona" / "transcripts" / f"{_key(backend, plan, scripts)}.jsonl"
                task = display.task(candidate.name, len(scripts))  # minutes per wave: a rate would print 0.0
                transcripts[candidate.name] = roll_out(
                    backend,
                    scripts,
                    plan,
                    batch_size=project.spec.eval.batch_size,
                    store=store,
                    on_conversation=task.advance,
                )
            finally:
                if given is None:
                    close_backend(backend)
        judge = _judge(project, spec, scripts, transcripts, display)
    finally:
        display.close()
    result = _result(project, spec, run_dir, scripts, transcripts, judge)
    if report:
        write_persona_report(run_dir, result)
        if track:
            result = replace(result, mlflow_run_id=log_persona(project, result))
    atomic_write_text(run_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return result


def _candidates(project: Project, spec: PersonaSpec, given: list[CandidateSpec] | None) -> list[CandidateSpec]:
    if given is None:
        names = spec.candidates
        given = [
            c
            for c in project.spec.candidates
            if (c.name in names if names else c.prompt == "zero_shot" and not c.constrained)
        ]
    if not given:
        raise InputError(
            "no candidate to replay: declare a zero-shot candidate or persona.candidates", file=project.spec_file
        )
    for candidate in given:
        if candidate.prompt != "zero_shot" or candidate.constrained:
            raise InputError(
                f"candidate {candidate.name!r} uses prompt {candidate.prompt!r}"
                f"{' with a grammar' if candidate.constrained else ''}: the consistency eval replays the conversation "
                "itself (the persona in the system prompt), so only zero-shot, unconstrained candidates apply",
                file=project.spec_file,
                field="persona.candidates",
            )
    return given


def _key(backend: Backend, plan: RolloutPlan, scripts: list[Script]) -> str:
    """What determines a transcript: the model, the plan and the scripts (a changed one is never reused)."""
    payload = {
        "backend": backend.identity(),
        "plan": plan.__dict__,
        "scripts": [[s.id, s.system, s.user_turns] for s in scripts],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _judge(
    project: Project,
    spec: PersonaSpec,
    scripts: list[Script],
    transcripts: dict[str, list[Transcript]],
    display: ProgressDisplay,
) -> tuple[dict[str, list[float]], JudgeCheck] | None:
    """The judge's verdicts on every probe answer, and its check on gold turns; ``None`` without a judge."""
    if spec.judge is None:
        return None
    backend = create_backend(spec.judge, project.spec.model_spec(spec.judge), project)
    batch = project.spec.eval.batch_size
    try:
        verdicts = {}
        task = display.task(f"judge {spec.judge}", len(transcripts) + 1)
        for name, runs in transcripts.items():
            pairs = [
                (scripts[i // (len(spec.probe_turns) * len(spec.probes))].persona, answer)
                for i, answer in enumerate(probe_answers(runs, spec.probe_turns))
            ]
            verdicts[name] = judge_replies(backend, pairs, batch)
            task.advance()
        check = _judge_check(backend, spec, scripts, batch)
        task.advance()
    finally:
        close_backend(backend)
    return verdicts, check


def _judge_check(backend: Backend, spec: PersonaSpec, scripts: list[Script], batch: int) -> JudgeCheck:
    """The judge on each persona's own most persona-revealing gold turn, and on another persona's."""
    revealing = [max(s.reference_turns, key=lambda turn, s=s: fact_f1(turn, s.persona)) for s in scripts]
    others = distractor_indices([s.persona for s in scripts], 1, spec.seed + 1)[:, 0]
    own = judge_replies(backend, [(s.persona, revealing[i]) for i, s in enumerate(scripts)], batch)
    other = judge_replies(backend, [(s.persona, revealing[others[i]]) for i, s in enumerate(scripts)], batch)
    return JudgeCheck(spec.judge or "", mean_ci(np.array(own)), mean_ci(np.array(other)))


def _result(
    project: Project,
    spec: PersonaSpec,
    run_dir: Path,
    scripts: list[Script],
    transcripts: dict[str, list[Transcript]],
    judge: tuple[dict[str, list[float]], JudgeCheck] | None,
) -> PersonaResult:
    samples, seed, turns = project.spec.eval.bootstrap_samples, project.spec.eval.seed, spec.probe_turns
    personas = [" ".join(s.persona) for s in scripts]
    distractors = distractor_indices([s.persona for s in scripts], spec.distractors, spec.seed)
    answers = {name: probe_answers(runs, turns) for name, runs in transcripts.items()}
    vectors = embeddings.embed_texts(personas + [a for texts in answers.values() for a in texts])
    persona_vectors, offset = vectors[: len(personas)], len(personas)
    matrices: dict[str, dict[str, np.ndarray]] = {}
    curves = []
    for name, runs in transcripts.items():
        count = len(answers[name])
        matrices[name] = score_matrices(
            scripts,
            runs,
            turns,
            answer_vectors=vectors[offset : offset + count],
            persona_vectors=persona_vectors,
            distractors=distractors,
            contradiction=judge[0][name] if judge is not None else None,
        )
        offset += count
        metrics = [m for m in DIRECTIONS if m in matrices[name]]
        curves.append(
            CandidateCurves(
                candidate=name,
                curves=[
                    build_curve(m, matrices[name][m], turns, margin=spec.margin, samples=samples, seed=seed)
                    for m in metrics
                ],
                conversations=len(runs),
                truncated=sum(t.dropped_exchanges > 0 for t in runs),
                dropped_exchanges_max=max(t.dropped_exchanges for t in runs),
                cut_by_length=sum(t.cut_by_length for t in runs),
                seconds_per_conversation=float(np.mean([t.seconds for t in runs])),
                completion_tokens_per_conversation=float(np.mean([t.completion_tokens for t in runs])),
            )
        )
    names = list(transcripts)
    comparisons = compare_candidates(
        "identifiability_rank",
        names,
        [matrices[n]["identifiability_rank"] for n in names],
        turns,
        samples=samples,
        seed=seed,
    )
    references = [turn for s in scripts for turn in s.reference_turns]
    return PersonaResult(
        run_dir=run_dir,
        conversations=len(scripts),
        turns=spec.turns,
        probe_turns=list(turns),
        probes=list(spec.probes),
        distractors=spec.distractors,
        margin=spec.margin,
        candidates=curves,
        comparisons=comparisons,
        reference_words=float(np.mean([words(t) for t in references])),
        reference_uppercase=float(np.mean([uppercase_share(t) for t in references])),
        judge=judge[1] if judge is not None else None,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
