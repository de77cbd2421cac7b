"""Backend registry: a dict from backend name to a factory; heavy imports happen inside the factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tunewise.config import ModelSpec, Project
from tunewise.models.base import Backend
from tunewise.models.embedded import missing_model
from tunewise.models.llamacpp import LlamaCppBackend
from tunewise.models.local import LocalBackend
from tunewise.models.mock import MockBackend
from tunewise.models.openai import OpenAIBackend

BackendFactory = Callable[[str, ModelSpec], Backend]
_FACTORIES: dict[str, BackendFactory] = {}


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    def decorate(factory: BackendFactory) -> BackendFactory:
        _FACTORIES[name] = factory
        return factory

    return decorate


def create_backend(name: str, spec: ModelSpec, project: Project | None = None) -> Backend:
    """Build the backend a :class:`ModelSpec` describes; ``name`` is the spec's model name.

    Args:
        project: the project whose ``models`` section may declare ``name``; a local model it declares that cannot be
            found is then an error naming the spec's line and key, raised now rather than when the model loads.

    Raises:
        InputError: ``project`` declares ``name`` as a local model whose path or adapter does not exist.
    """
    if spec.backend not in _FACTORIES:
        raise KeyError(f"unknown backend {spec.backend!r} (known: {', '.join(sorted(_FACTORIES))})")
    if project is not None and spec.backend == "local" and project.spec.models.get(name) == spec:
        _check_local_model(name, spec, project)
    return _FACTORIES[spec.backend](name, spec)


def _check_local_model(name: str, spec: ModelSpec, project: Project) -> None:
    problem = missing_model(spec.path or name)
    if problem is not None:
        raise project.spec_error(problem, ("models", name, "path") if spec.path else ("models", name))
    if spec.adapter is not None and not Path(spec.adapter).is_dir():
        raise project.spec_error(f"adapter directory not found: {spec.adapter}", ("models", name, "adapter"))


@register_backend("mock")
def _mock(name: str, spec: ModelSpec) -> Backend:
    return MockBackend(spec.outputs, name=name)


@register_backend("local")
def _local(name: str, spec: ModelSpec) -> Backend:
    if spec.engine == "llamacpp":
        # The spec's timeout_s default (60 s) is an HTTP API's; a CPU server decoding long answers needs longer.
        timeout_s = spec.timeout_s if "timeout_s" in spec.model_fields_set else 600.0
        return LlamaCppBackend(
            spec.path or name, adapter=spec.adapter, name=name, parallel=spec.concurrency, timeout_s=timeout_s
        )
    return LocalBackend(spec.path or name, adapter=spec.adapter, name=name)


@register_backend("openai")
def _openai(name: str, spec: ModelSpec) -> Backend:
    return OpenAIBackend(
        base_url=spec.base_url or "",
        model=spec.model or name,
        api_key_env=spec.api_key_env,
        name=name,
        concurrency=spec.concurrency,
        timeout_s=spec.timeout_s,
        max_retries=spec.max_retries,
    )
