"""``tunewise persona``: replay held-out conversations turn by turn and measure persona drift (thin over
:func:`tunewise.persona.persona_eval`)."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from tunewise.cli.common import console, handle_errors
from tunewise.config import CandidateSpec, ModelSpec, PersonaSpec, Project, load_project
from tunewise.errors import InputError
from tunewise.persona import persona_eval
from tunewise.persona.report import headline

FINETUNED = "finetuned-persona"


def persona_command(
    config: Path = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory)."),
    candidate: list[str] | None = typer.Option(
        None, "--candidate", help="A candidate to replay (repeatable; default: persona.candidates or every zero-shot)."
    ),
    adapter: Path | None = typer.Option(
        None, "--adapter", help="Also replay this LoRA adapter (on train.base_model, the first candidate's engine)."
    ),
    conversations: int | None = typer.Option(None, "--conversations", min=2, help="Held-out dialogues replayed."),
    turns: int | None = typer.Option(None, "--turns", min=1, help="Assistant turns per conversation."),
    judge: str | None = typer.Option(None, "--judge", help="A model of the spec that judges contradictions."),
    name: str | None = typer.Option(None, "--name", help="The run's name: the same name reuses finished transcripts."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
) -> None:
    """Replay held-out dialogues turn by turn; at fixed turns ask each candidate about itself; chart the drift."""
    with handle_errors():
        project = load_project(config)
        spec = _spec(project, conversations, turns, judge)
        chosen = _chosen(project, spec, candidate)
        models: dict[str, ModelSpec] = {}
        if adapter is not None:
            if not adapter.is_dir():
                raise InputError("adapter directory not found", file=adapter, field="--adapter")
            engine = project.spec.model_spec(chosen[0].model).engine if chosen else "transformers"
            models[FINETUNED] = ModelSpec(
                path=project.spec.train.base_model, adapter=str(adapter.resolve()), engine=engine
            )
            chosen = [*chosen, CandidateSpec(name=FINETUNED, model=FINETUNED)]
        result = persona_eval(project, candidates=chosen, extra_models=models, spec=spec, name=name, track=not no_track)
    console.print(headline(result), highlight=False)
    console.print(f"report: [bold]{result.run_dir / 'report.html'}[/bold]")


def _spec(project: Project, conversations: int | None, turns: int | None, judge: str | None) -> PersonaSpec:
    given = {"conversations": conversations, "turns": turns, "judge": judge}
    try:
        return PersonaSpec.model_validate(
            {**project.spec.persona.model_dump(), **{k: v for k, v in given.items() if v is not None}}
        )
    except ValidationError as error:
        first = error.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        flags = [f"--{k}" for k, v in given.items() if v is not None and (k == key or not key)]
        field = ", ".join(flags) or (f"persona.{key}" if key else "persona")
        raise InputError(first["msg"].removeprefix("Value error, "), field=field) from None


def _chosen(project: Project, spec: PersonaSpec, names: list[str] | None) -> list[CandidateSpec]:
    known = {c.name: c for c in project.spec.candidates}
    wanted = names or spec.candidates
    if wanted:
        missing = [n for n in wanted if n not in known]
        if missing:
            raise InputError(
                f"unknown candidate {missing[0]!r} (known: {', '.join(known) or 'none'})", field="--candidate"
            )
        return [known[n] for n in wanted]
    return [c for c in project.spec.candidates if c.prompt == "zero_shot" and not c.constrained]
