"""Model backends: ``mock`` (scripted), ``local`` (transformers + PEFT), ``openai`` (any compatible endpoint)."""

from tunewise.models.base import Backend, GenerationConfig
from tunewise.models.mock import MockBackend
from tunewise.models.registry import create_backend, register_backend

__all__ = ["Backend", "GenerationConfig", "MockBackend", "create_backend", "register_backend"]
