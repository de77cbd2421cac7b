"""What scoring needs to know about the task, built once from the project."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import numpy as np

from tunewise.config import TASK_KINDS, Project
from tunewise.errors import InputError
from tunewise.metrics.normalize import NORMALIZERS


@dataclass(frozen=True)
class MetricContext:
    """What scoring needs to know about the task.

    Attributes:
        kind: ``extract``, ``classify``, ``generate`` or ``chat``.
        schema: the output JSON Schema (extract); its ``properties`` are the scored fields.
        labels: the label set (classify).
        field_normalizers: field -> normaliser name (default ``text``).
        fuzzy_threshold: token F1 at or above which a ``fuzzy`` field is correct.
        embedder: texts -> embeddings for ``embedding_cosine`` (default: :func:`tunewise.embeddings.embed_texts`).
        use_embeddings: compute ``embedding_cosine`` for generate/chat.
    """

    kind: str
    schema: dict[str, Any] | None = None
    labels: list[str] | None = None
    field_normalizers: dict[str, str] = field(default_factory=dict)
    fuzzy_threshold: float = 0.8
    embedder: Callable[[list[str]], np.ndarray] | None = field(default=None, compare=False, repr=False)
    use_embeddings: bool = True
    validator: Any = field(init=False, compare=False, repr=False)
    fields: list[str] | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise InputError(
                f"unknown task kind {self.kind!r} (expected one of: {', '.join(TASK_KINDS)})", field="task.kind"
            )
        if not 0 < self.fuzzy_threshold <= 1:
            raise InputError(f"must be in (0, 1], got {self.fuzzy_threshold}", field="task.fuzzy_threshold")
        validator = None
        fields = None
        if self.schema is not None:
            validator = jsonschema.validators.validator_for(self.schema)(self.schema)
            properties = self.schema.get("properties")
            fields = list(properties) if isinstance(properties, dict) and properties else None
        for name, normalizer in self.field_normalizers.items():
            where = f"task.field_normalizers.{name}"
            if normalizer not in NORMALIZERS:
                raise InputError(
                    f"unknown normaliser {normalizer!r} (expected one of: {', '.join(NORMALIZERS)})", field=where
                )
            if fields is not None and name not in fields:
                raise InputError(f"not a field of the output schema (fields: {', '.join(fields)})", field=where)
        object.__setattr__(self, "validator", validator)
        object.__setattr__(self, "fields", fields)

    @classmethod
    def from_project(cls, project: Project, **overrides: Any) -> MetricContext:
        """The context of a loaded project; ``overrides`` set ``embedder`` / ``use_embeddings`` (tests).

        Raises:
            InputError: an unknown normaliser or a normaliser for a field the schema lacks, naming the spec file.
        """
        task = project.spec.task
        try:
            return cls(
                kind=task.kind,
                schema=project.output_schema,
                labels=list(project.labels) if project.labels else None,
                field_normalizers=dict(task.field_normalizers),
                fuzzy_threshold=task.fuzzy_threshold,
                **overrides,
            )
        except InputError as exc:
            raise InputError(exc.problem, file=project.spec_file, field=exc.field) from None
