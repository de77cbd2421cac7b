"""The project spec, ``tunewise.yaml``: validated on load, unknown keys are errors naming file, line and key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import Field, field_validator, model_validator

from tunewise.config.base import SpecError, Strict
from tunewise.config.curation import CurationSpec
from tunewise.config.decide import DecideSpec
from tunewise.config.distill import DistillSpec
from tunewise.config.monitor import LabelSpec, MonitorSpec, RefreshSpec
from tunewise.config.persona import PersonaSpec
from tunewise.config.quickstart import QuickstartSpec
from tunewise.config.sections import (
    CandidateSpec,
    DataSpec,
    EvalSpec,
    ModelSpec,
    TargetsSpec,
    TaskSpec,
    TrackingSpec,
)
from tunewise.config.serve import ServeSpec
from tunewise.config.tasks import DEFAULT_METRIC, EMBEDDED_MODEL, TASK_METRICS
from tunewise.config.train import TrainSpec
from tunewise.config.validation import validate_section
from tunewise.errors import InputError
from tunewise.io.text import read_text_file
from tunewise.io.yamlfile import KeyLines, line_of, read_yaml_mapping


class ProjectSpec(Strict):
    """The whole ``tunewise.yaml``."""

    name: str
    task: TaskSpec
    data: DataSpec
    targets: TargetsSpec = TargetsSpec()
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    candidates: list[CandidateSpec] = Field(default_factory=list)
    eval: EvalSpec = EvalSpec()
    curation: CurationSpec = CurationSpec()
    train: TrainSpec = TrainSpec()
    decide: DecideSpec = DecideSpec()
    serve: ServeSpec = ServeSpec()
    distill: DistillSpec = DistillSpec()
    persona: PersonaSpec = PersonaSpec()
    monitor: MonitorSpec = MonitorSpec()
    label: LabelSpec = LabelSpec()
    refresh: RefreshSpec = RefreshSpec()
    quickstart: QuickstartSpec = QuickstartSpec()
    tracking: TrackingSpec = TrackingSpec()

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, candidates: list[CandidateSpec]) -> list[CandidateSpec]:
        names = [c.name for c in candidates]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"candidate names must be unique, repeated: {', '.join(duplicated)}")
        return candidates

    @model_validator(mode="after")
    def _check_task(self) -> ProjectSpec:
        if self.task.kind == "extract" and not (self.task.output_schema or self.task.output_schema_file):
            raise SpecError(("task", "kind"), "task.kind 'extract' needs task.output_schema or task.output_schema_file")
        if self.task.kind == "classify" and not (self.task.labels or self.task.labels_file):
            raise SpecError(("task", "kind"), "task.kind 'classify' needs task.labels or task.labels_file")
        if self.task.persona_file and self.task.kind != "chat":
            raise SpecError(
                ("task", "persona_file"), f"task.persona_file applies to task.kind 'chat', not {self.task.kind!r}"
            )
        return self

    @model_validator(mode="after")
    def _check_candidate_models(self) -> ProjectSpec:
        for index, candidate in enumerate(self.candidates):
            if candidate.model not in self.models and candidate.model != EMBEDDED_MODEL:
                known = ", ".join(sorted({EMBEDDED_MODEL, *self.models}))
                raise SpecError(
                    ("candidates", index, "model"),
                    f"candidate {candidate.name!r} uses unknown model {candidate.model!r} (known: {known})",
                )
        return self

    @model_validator(mode="after")
    def _check_probe_model(self) -> ProjectSpec:
        model = self.decide.probes.model
        if model is not None and model not in self.models and model != EMBEDDED_MODEL:
            known = ", ".join(sorted({EMBEDDED_MODEL, *self.models}))
            raise SpecError(("decide", "probes", "model"), f"unknown model {model!r} (known: {known})")
        return self

    @model_validator(mode="after")
    def _check_teacher(self) -> ProjectSpec:
        teacher = self.distill.teacher
        if teacher is not None and teacher not in {c.name for c in self.candidates}:
            known = ", ".join(c.name for c in self.candidates) or "none declared"
            raise SpecError(("distill", "teacher"), f"the teacher must be a candidate of the spec (known: {known})")
        return self

    @model_validator(mode="after")
    def _check_persona_candidates(self) -> ProjectSpec:
        known = {c.name for c in self.candidates}
        for index, name in enumerate(self.persona.candidates or []):
            if name not in known:
                listed = ", ".join(sorted(known)) or "none declared"
                raise SpecError(("persona", "candidates", index), f"unknown candidate {name!r} (known: {listed})")
        judge = self.persona.judge
        if judge is not None and judge not in self.models and judge != EMBEDDED_MODEL:
            known_models = ", ".join(sorted({EMBEDDED_MODEL, *self.models}))
            raise SpecError(("persona", "judge"), f"unknown model {judge!r} (known: {known_models})")
        return self

    @model_validator(mode="after")
    def _check_label_teacher(self) -> ProjectSpec:
        teacher = self.label.teacher
        if teacher is not None and teacher not in {c.name for c in self.candidates}:
            known = ", ".join(c.name for c in self.candidates) or "none declared"
            raise SpecError(("label", "teacher"), f"the teacher must be a candidate of the spec (known: {known})")
        return self

    @model_validator(mode="after")
    def _check_target_metric(self) -> ProjectSpec:
        metric, kind = self.targets.metric, self.task.kind
        if metric is not None and metric not in TASK_METRICS[kind]:
            raise SpecError(
                ("targets", "metric"), f"{metric!r} is not a {kind} metric (one of: {', '.join(TASK_METRICS[kind])})"
            )
        return self

    def model_spec(self, name: str) -> ModelSpec:
        if name in self.models:
            return self.models[name]
        if name == EMBEDDED_MODEL:
            return ModelSpec(backend="local", path=EMBEDDED_MODEL)
        raise KeyError(name)

    @property
    def primary_metric(self) -> str:
        return self.targets.metric or DEFAULT_METRIC[self.task.kind]

    @property
    def registered_model(self) -> str:
        """The MLflow registered model of the project's adapters (``tunewise train`` registers ``<name>-lora``)."""
        return self.refresh.registered_model or f"{self.name}-lora"

    @property
    def champion(self) -> str:
        """The served name of the champion: ``<registered model>@<alias>``."""
        return f"{self.registered_model}@{self.refresh.alias}"


class Project:
    """A loaded spec plus where it lives: resolves relative paths and holds the resolved schema and labels.

    ``lines`` holds the line of every key of the spec file, so that a problem found after loading (a declared file
    that is missing, a model that cannot be found) names the line and the key that caused it.
    """

    def __init__(
        self, spec: ProjectSpec, root: Path, spec_file: Path | None = None, lines: KeyLines | None = None
    ) -> None:
        self.spec = spec
        self.root = root
        self.spec_file = spec_file
        self.lines = lines or {}
        self.output_schema = self._load_schema()
        self.labels = self._load_labels()
        self.persona = self._load_persona()

    @property
    def state_dir(self) -> Path:
        return self.root / ".tunewise"

    def path(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    def split_path(self, split: str) -> Path:
        """The data file the spec declares for ``split``.

        Raises:
            InputError: none is declared, or the file is missing (naming the spec's line and key).
        """
        value = getattr(self.spec.data, split, None)
        if value is None:
            raise InputError(f"no '{split}' file declared", file=self.spec_file, field=f"data.{split}")
        return self.declared_file(value, ("data", split))

    def declared_file(self, value: str, key: tuple[Any, ...], *, what: str = "file") -> Path:
        """The file the spec names at ``key`` (resolved against the spec's folder), which must exist.

        Raises:
            InputError: ``<what> not found`` or a directory, naming the spec file, the key's line and the key.
        """
        path = self.path(value)
        if path.is_dir():
            raise self.spec_error(f"{what} is a directory: {path}", key)
        if not path.is_file():
            raise self.spec_error(f"{what} not found: {path}", key)
        return path

    def spec_error(self, problem: str, key: tuple[Any, ...]) -> InputError:
        """An error about the spec's key ``key`` (``("data", "dev")``): ``tunewise.yaml:6: data.dev: problem``."""
        return InputError(
            problem,
            file=self.spec_file,
            line=line_of(self.lines, key),
            field=".".join(str(part) for part in key),
        )

    def _load_schema(self) -> dict[str, Any] | None:
        task = self.spec.task
        where = "task.output_schema"
        schema = task.output_schema
        source: Path | None = self.spec_file
        if task.output_schema_file:
            where = "task.output_schema_file"
            source = self.declared_file(task.output_schema_file, ("task", "output_schema_file"), what="schema file")
            schema = _read_json(source, field=where)
        if schema is None:
            return None
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            path = "/".join(str(p) for p in exc.path) or "(root)"
            raise InputError(f"not a valid JSON Schema at {path}: {exc.message}", file=source, field=where) from None
        return schema

    def _load_persona(self) -> list[str] | None:
        if not self.spec.task.persona_file:
            return None
        source = self.declared_file(self.spec.task.persona_file, ("task", "persona_file"), what="persona file")
        lines = [line.strip() for line in read_text_file(source).splitlines() if line.strip()]
        if not lines:
            raise InputError(
                "empty persona file: give one persona line per line", file=source, field="task.persona_file"
            )
        return lines

    def _load_labels(self) -> list[str] | None:
        task = self.spec.task
        if task.labels_file:
            source = self.declared_file(task.labels_file, ("task", "labels_file"), what="labels file")
            labels = _read_json(source, field="task.labels_file")
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise InputError("expected a JSON list of strings", file=source, field="task.labels_file")
            return labels
        return task.labels


def _read_json(path: Path, *, field: str) -> Any:
    """A JSON file beside the spec (schema, labels), its errors naming the file, line and spec key."""
    try:
        return json.loads(read_text_file(path))
    except InputError as exc:
        raise InputError(exc.problem, file=exc.file, line=exc.line, field=field) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON: {exc.msg} (column {exc.colno})", file=path, line=exc.lineno, field=field
        ) from None


def load_project(path: str | Path = "tunewise.yaml") -> Project:
    """Load and validate a spec file (or the ``tunewise.yaml`` inside a directory).

    Raises:
        InputError: missing file, malformed YAML, unknown or wrong key (named with its line), invalid schema.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "tunewise.yaml"
    raw, lines = read_yaml_mapping(path, what="spec file")
    spec = validate_section(ProjectSpec, raw, path=path, lines=lines)
    return Project(spec, path.parent.resolve(), path.resolve(), lines)


def project_from_dict(raw: dict[str, Any], root: str | Path) -> Project:
    """Build a project from an in-memory spec (tests, notebooks)."""
    spec = validate_section(ProjectSpec, raw, path=Path("<dict>"), lines={})
    return Project(spec, Path(root).resolve())
