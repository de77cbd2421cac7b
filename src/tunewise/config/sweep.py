"""The ``sweep.yaml`` file: search space, fixed overrides, budget, pruner, seed; validated against TrainSpec.

Unknown keys are errors, and so is a parameter that is not a :class:`~tunewise.config.train.TrainSpec` field or
a bound that is not a valid value of it: each names the file, line and key, before anything runs or is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from tunewise.config.base import Strict
from tunewise.config.train import TrainSpec
from tunewise.config.validation import validate_section
from tunewise.errors import InputError
from tunewise.io.yamlfile import read_yaml_mapping


class FloatParam(Strict):
    """A float drawn uniformly (``uniform``) or log-uniformly (``loguniform``) from ``[low, high]``."""

    type: Literal["uniform", "loguniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        if self.low >= self.high:
            raise ValueError("low must be below high")
        if self.type == "loguniform" and self.low <= 0:
            raise ValueError("loguniform needs low > 0")
        return self

    def extremes(self) -> list[Any]:
        return [self.low, self.high]


class IntParam(Strict):
    """An integer from ``low`` to ``high`` inclusive, every ``step`` (``log: true`` samples on a log scale)."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        if self.low >= self.high:
            raise ValueError("low must be below high")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("log int ranges need low > 0 and step 1")
        return self

    def extremes(self) -> list[Any]:
        return [self.low, self.high]


class CategoricalParam(Strict):
    """One of ``choices`` (numbers, strings, booleans or lists such as target module sets)."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)

    def extremes(self) -> list[Any]:
        return list(self.choices)


ParamSpec = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Budget(Strict):
    """Stop after ``trials`` trials or once ``minutes`` have passed (no new trial starts after that)."""

    trials: int = Field(10, ge=1)
    minutes: float | None = Field(None, gt=0)


class SweepSpec(Strict):
    """The whole ``sweep.yaml``. Unknown keys are errors; ``params`` and ``fixed`` must name TrainSpec fields."""

    params: dict[str, ParamSpec] = Field(min_length=1)
    """TrainSpec field -> search distribution."""
    fixed: dict[str, Any] = Field(default_factory=dict)
    """TrainSpec fields set for every trial (e.g. ``max_steps``, ``eval_every``)."""
    budget: Budget = Budget()
    direction: Literal["maximize", "minimize"] = "maximize"
    pruner: Literal["median", "none"] = "median"
    startup_trials: int = Field(2, ge=0)
    """Trials that run to the end before the median pruner may stop any."""
    seed: int = 0


def load_sweep(path: str | Path, *, base_spec: TrainSpec | None = None) -> SweepSpec:
    """Read and validate a sweep file against the training config.

    Every parameter and fixed override must be a :class:`TrainSpec` field, and every bound or choice must be a
    valid value of it (checked by building a TrainSpec at each extreme), so a bad sweep fails before any trial runs.

    Raises:
        InputError: ``file:line: key: problem`` for a missing file, malformed YAML, an unknown key or a bad value.
    """
    path = Path(path)
    raw, lines = read_yaml_mapping(path, what="sweep file")
    sweep_spec = validate_section(SweepSpec, raw, path=path, lines=lines)
    _check_against_train_spec(sweep_spec, base_spec or TrainSpec(), path, lines)
    return sweep_spec


def _check_against_train_spec(
    sweep_spec: SweepSpec, base: TrainSpec, path: Path, lines: dict[tuple[Any, ...], int]
) -> None:
    known = TrainSpec.model_fields
    for section, names in (("fixed", sweep_spec.fixed), ("params", sweep_spec.params)):
        for name in names:
            if name not in known:
                raise InputError(
                    f"not a training setting (expected one of: {', '.join(known)})",
                    file=path,
                    line=lines.get((section, name)),
                    field=f"{section}.{name}",
                )
    overlap = sorted(set(sweep_spec.fixed) & set(sweep_spec.params))
    if overlap:
        raise InputError(
            "both fixed and searched", file=path, line=lines.get(("fixed", overlap[0])), field=f"fixed.{overlap[0]}"
        )
    base_values = base.model_dump()
    try:
        TrainSpec.model_validate({**base_values, **sweep_spec.fixed})
    except ValidationError as exc:
        name = str(exc.errors()[0]["loc"][0])
        raise InputError(
            exc.errors()[0]["msg"], file=path, line=lines.get(("fixed", name)), field=f"fixed.{name}"
        ) from None
    for name, param in sweep_spec.params.items():
        for value in param.extremes():
            try:
                TrainSpec.model_validate({**base_values, **sweep_spec.fixed, name: value})
            except ValidationError as exc:
                raise InputError(
                    f"{value!r} is not a valid value: {exc.errors()[0]['msg']}",
                    file=path,
                    line=lines.get(("params", name)),
                    field=f"params.{name}",
                ) from None
