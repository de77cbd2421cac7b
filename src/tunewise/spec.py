"""The project spec, ``tunewise.yaml``: validated on load, unknown keys are errors naming file, line and key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunewise.data.config import CurationSpec
from tunewise.decide.config import DecideSpec
from tunewise.errors import InputError
from tunewise.io.yamlfile import KeyLines, line_of, read_yaml_mapping
from tunewise.train.config import TrainSpec

EMBEDDED_MODEL = "smollm2-135m"
TaskKind = Literal["extract", "classify", "generate", "chat"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Strict):
    """What the model must do."""

    kind: TaskKind
    instructions: str = ""
    """System prompt: the task's instructions. Used identically for evaluation and training."""
    input_template: str | None = None
    """How a ``fields`` row becomes the user message, e.g. ``"Receipt:\\n{text}"``; default: the input field."""
    output_schema: dict[str, Any] | None = None
    """For ``extract``: the JSON Schema of the output object (inline)."""
    output_schema_file: str | None = None
    """For ``extract``: a path (relative to the spec) holding the JSON Schema."""
    labels: list[str] | None = None
    """For ``classify``: the label set."""
    labels_file: str | None = None
    """For ``classify``: a JSON file holding the label list."""
    field_normalizers: dict[str, str] = Field(default_factory=dict)
    """For ``extract``: field -> normaliser (``text``, ``exact``, ``number``, ``money``, ``date``, ``fuzzy``)."""
    fuzzy_threshold: float = Field(0.8, gt=0, le=1)
    """Token-F1 at or above which a ``fuzzy`` field counts as correct."""


class DataSpec(_Strict):
    """Where the examples are and how rows map to input and target."""

    train: str | None = None
    dev: str | None = None
    test: str | None = None
    format: Literal["auto", "chat", "prompt_completion", "fields"] = "auto"
    input_field: str = "text"
    target_field: str = "target"
    id_field: str = "id"
    group_field: str | None = None
    """Rows sharing this key (e.g. a shop) must stay in one split."""
    documents: str | None = None
    """A JSONL of documents (``id``, ``text``, optional ``title``) for retrieval candidates."""


class TargetsSpec(_Strict):
    """What counts as good enough."""

    metric: str | None = None
    """The quality metric that decides (default per task kind: field_accuracy / accuracy / rouge_l)."""
    threshold: float = Field(0.9, ge=0, le=1)
    p95_latency_ms: float | None = Field(None, gt=0)
    cost_per_1m_tokens: float | None = Field(None, gt=0)
    """Budget in US dollars per million tokens (prompt + completion)."""
    self_hosted_only: bool = False
    """Data residency: no data may leave the user's machines."""


class ModelSpec(_Strict):
    """A model a candidate can use."""

    backend: Literal["local", "openai", "mock"] = "local"
    path: str | None = None
    """local: an HF model directory, or the name of an embedded model (``smollm2-135m``)."""
    adapter: str | None = None
    """local: a PEFT adapter directory applied on top of ``path``."""
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    """openai: the environment variable holding the API key (never the key itself)."""
    price_in_per_1m: float | None = Field(None, ge=0)
    price_out_per_1m: float | None = Field(None, ge=0)
    gpu_hour_usd: float | None = Field(None, ge=0)
    """self-hosted: cost of the machine per hour, turned into $/1M tokens with the measured throughput."""
    outputs: list[str] | None = None
    """mock: scripted outputs, used in order and cycled."""
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)
    on_premises: bool = False
    """openai: the endpoint runs on the user's own machines (e.g. a vLLM server), so data sent to it stays there."""

    @model_validator(mode="after")
    def _check_backend_fields(self) -> ModelSpec:
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("an openai model needs base_url and model")
        if self.backend == "mock" and self.outputs is None:
            raise ValueError("a mock model needs outputs")
        return self

    @property
    def self_hosted(self) -> bool:
        return self.backend != "openai" or self.on_premises


class CandidateSpec(_Strict):
    """A model plus a prompt strategy."""

    name: str
    model: str = EMBEDDED_MODEL
    prompt: str = "zero_shot"
    """A registered prompt strategy: ``zero_shot``, ``k_shot`` (later stages add ``rag``)."""
    k: int = Field(3, ge=0)
    """k_shot: how many solved examples from train precede the input."""
    shot_selection: Literal["random", "similar"] = "random"
    constrained: bool = False
    """Enforce the output JSON Schema with a grammar during decoding (local backend)."""
    retriever: Literal["bm25", "dense", "hybrid"] = "hybrid"
    """rag: how passages are retrieved from ``data.documents``."""
    retrieval_k: int = Field(3, ge=1)
    """rag: how many passages go into the prompt."""


class EvalSpec(_Strict):
    """How evaluation runs."""

    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    bootstrap_samples: int = Field(1000, ge=100)
    seed: int = 0
    gpu_hour_usd: float = Field(1.0, ge=0)
    """Default $/GPU-hour used to cost self-hosted candidates from measured throughput."""


class TrackingSpec(_Strict):
    uri: str | None = None
    """Any MLflow tracking URI; default: a SQLite file inside the project's ``.tunewise`` directory."""
    experiment: str | None = None


class ProjectSpec(_Strict):
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
            raise ValueError("task.kind 'extract' needs task.output_schema or task.output_schema_file")
        if self.task.kind == "classify" and not (self.task.labels or self.task.labels_file):
            raise ValueError("task.kind 'classify' needs task.labels or task.labels_file")
        for candidate in self.candidates:
            if candidate.model not in self.models and candidate.model != EMBEDDED_MODEL:
                known = ", ".join(sorted({EMBEDDED_MODEL, *self.models}))
                raise ValueError(f"candidate {candidate.name!r} uses unknown model {candidate.model!r} (known: {known})")
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


DEFAULT_METRIC = {"extract": "field_accuracy", "classify": "accuracy", "generate": "rouge_l", "chat": "rouge_l"}


class Project:
    """A loaded spec plus where it lives: resolves relative paths and holds the resolved schema and labels."""

    def __init__(self, spec: ProjectSpec, root: Path, spec_file: Path | None = None) -> None:
        self.spec = spec
        self.root = root
        self.spec_file = spec_file
        self.output_schema = self._load_schema()
        self.labels = self._load_labels()

    @property
    def state_dir(self) -> Path:
        return self.root / ".tunewise"

    def path(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    def split_path(self, split: str) -> Path:
        value = getattr(self.spec.data, split, None)
        if value is None:
            raise InputError(f"no '{split}' file declared", file=self.spec_file, field=f"data.{split}")
        return self.path(value)

    def _load_schema(self) -> dict[str, Any] | None:
        task = self.spec.task
        where = "task.output_schema"
        schema = task.output_schema
        source: Path | None = self.spec_file
        if task.output_schema_file:
            where = "task.output_schema_file"
            source = self.path(task.output_schema_file)
            if not source.is_file():
                raise InputError("schema file not found", file=source, field=where)
            try:
                schema = json.loads(source.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON: {exc.msg}", file=source, line=exc.lineno, field=where) from None
        if schema is None:
            return None
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            path = "/".join(str(p) for p in exc.path) or "(root)"
            raise InputError(f"not a valid JSON Schema at {path}: {exc.message}", file=source, field=where) from None
        return schema

    def _load_labels(self) -> list[str] | None:
        task = self.spec.task
        if task.labels_file:
            source = self.path(task.labels_file)
            if not source.is_file():
                raise InputError("labels file not found", file=source, field="task.labels_file")
            labels = json.loads(source.read_text(encoding="utf-8"))
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise InputError("expected a JSON list of strings", file=source, field="task.labels_file")
            return labels
        return task.labels


def load_project(path: str | Path = "tunewise.yaml") -> Project:
    """Load and validate a spec file (or the ``tunewise.yaml`` inside a directory).

    Raises:
        InputError: missing file, malformed YAML, unknown or wrong key (named with its line), invalid schema.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "tunewise.yaml"
    raw, lines = read_yaml_mapping(path, what="spec file")
    try:
        spec = ProjectSpec.model_validate(raw)
    except ValidationError as exc:
        raise _as_input_error(exc, path, lines) from None
    return Project(spec, path.parent.resolve(), path.resolve())


def project_from_dict(raw: dict[str, Any], root: str | Path) -> Project:
    """Build a project from an in-memory spec (tests, notebooks)."""
    try:
        spec = ProjectSpec.model_validate(raw)
    except ValidationError as exc:
        raise _as_input_error(exc, Path("<dict>"), {}) from None
    return Project(spec, Path(root).resolve())


def _as_input_error(exc: ValidationError, path: Path, lines: KeyLines) -> InputError:
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = line_of(lines, loc)
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        expected = ", ".join(parent.model_fields) if parent else "a known key"
        problem = f"unknown key (expected one of: {expected})"
    else:
        problem = error["msg"]
        if error["type"] not in ("value_error", "missing") and "input" in error:
            problem += f" (got {error['input']!r})"
    return InputError(problem, file=path, line=line, field=key)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: Any = ProjectSpec
    for part in loc:
        if isinstance(part, int):
            continue
        if model is ProjectSpec and part == "models":
            return ModelSpec if len(loc) > 1 else None
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model
