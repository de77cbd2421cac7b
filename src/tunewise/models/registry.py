"""Backend registry: a dict from backend name to a factory; heavy imports happen inside the factory."""

from __future__ import annotations

from collections.abc import Callable

from tunewise.config import ModelSpec
from tunewise.models.base import Backend
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


def create_backend(name: str, spec: ModelSpec) -> Backend:
    """Build the backend a :class:`ModelSpec` describes; ``name`` is the spec's model name."""
    if spec.backend not in _FACTORIES:
        raise KeyError(f"unknown backend {spec.backend!r} (known: {', '.join(sorted(_FACTORIES))})")
    return _FACTORIES[spec.backend](name, spec)


@register_backend("mock")
def _mock(name: str, spec: ModelSpec) -> Backend:
    return MockBackend(spec.outputs, name=name)


@register_backend("local")
def _local(name: str, spec: ModelSpec) -> Backend:
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
