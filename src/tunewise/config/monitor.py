"""The ``monitor:``, ``label:`` and ``refresh:`` sections: when production traffic has drifted, what gets labelled,
and when a retrained challenger may replace the champion."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from tunewise.config.base import Strict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_seconds(value: str) -> float:
    """``90d`` → 7776000.0; ``s``, ``m``, ``h``, ``d`` and ``w`` units.

    Raises:
        ValueError: not a duration.
    """
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"expected a duration such as 12h, 7d or 90d, got {value!r}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class Band(Strict):
    """Effect-size thresholds of one signal: at or over ``watch`` is worth a look, at or over ``drift`` needs action.

    A signal is only ``watch`` or ``drift`` when its test is also significant (``monitor.alpha``, corrected for the
    number of signals tested), so an effect measured on noise raises nothing.
    """

    watch: float = Field(ge=0)
    drift: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.drift < self.watch:
            raise ValueError(f"drift ({self.drift}) must be at or above watch ({self.watch})")
        return self


class MonitorThresholds(Strict):
    """Per-signal bands. Effects are absolute differences against the reference unless said otherwise."""

    input_auc: Band = Band(watch=0.6, drift=0.7)
    """The domain classifier's AUC at telling window inputs from reference inputs (0.5: indistinguishable)."""
    novel_inputs: Band = Band(watch=0.05, drift=0.1)
    """The rise of the share of inputs farther from every reference input than 95% of reference inputs are from
    their nearest other (about 5% of the reference by construction): a new kind of input, even a minority of it."""
    input_length: Band = Band(watch=0.25, drift=0.5)
    """The change of the median input length, as a fraction of the reference's median."""
    empty_inputs: Band = Band(watch=0.02, drift=0.05)
    """The rise of the share of empty inputs."""
    non_latin: Band = Band(watch=0.05, drift=0.15)
    """The rise of the share of inputs written mostly outside the Latin script (another language or charset)."""
    output_validity: Band = Band(watch=0.03, drift=0.1)
    """The drop of the share of outputs that parse (and match the schema, for ``extract``)."""
    null_fields: Band = Band(watch=0.05, drift=0.15)
    """The rise of the share of null or empty fields (``extract``)."""
    label_shift: Band = Band(watch=0.1, drift=0.2)
    """The total-variation distance between the predicted-label distributions (``classify``)."""
    refusals: Band = Band(watch=0.02, drift=0.05)
    """The rise of the share of outputs that refuse the task."""
    output_length: Band = Band(watch=0.25, drift=0.5)
    """The change of the median output length (tokens), as a fraction of the reference's median."""
    quality: Band = Band(watch=0.03, drift=0.05)
    """The drop of the task metric on labelled production examples below the champion's dev figure."""


class MonitorSpec(Strict):
    """How ``tunewise monitor`` compares a window of production traffic with the champion's reference data."""

    model: str | None = None
    """The served name whose traffic is watched (default: ``<refresh.registered_model>@<refresh.alias>``). Only
    rows answered by that name's current version are compared; rows of other versions are counted and left out."""
    traffic: str | None = None
    """A JSONL of production inputs with timestamps instead of the request log (``id``, ``created``, the input as
    the spec's input field or as chat ``messages``, optional ``output`` and ``model_version``)."""
    reference: str | None = None
    """A dataset version (hash, prefix or ``latest``) whose train and dev inputs are the reference (default: the
    champion's dataset version, else the latest version)."""
    reference_size: int = Field(500, ge=20)
    """Reference inputs sampled (seeded) for the two-sample tests."""
    window: str = "7d"
    """The trend's bucket: the window is cut into buckets of this length, each tested on its own."""
    min_examples: int = Field(30, ge=5)
    """A window or bucket with fewer rows gets no verdict (``too_few``): no verdict on noise."""
    alpha: float = Field(0.01, gt=0, lt=1)
    """Family-wise significance level, Holm-corrected over the signals tested in one window."""
    permutations: int = Field(2000, ge=100)
    """Permutations of the MMD test (its smallest p-value is 1 / (permutations + 1))."""
    bootstrap: int = Field(1000, ge=100)
    """Bootstrap resamples for effect CIs."""
    top_examples: int = Field(10, ge=0)
    """Window examples listed as driving the drift."""
    reference_outputs: int = Field(300, ge=0)
    """Reference dev examples the watched model answers (through the eval cache) to be the output reference; 0 uses
    the dev set's gold targets instead (label distribution and null fields only)."""
    seed: int = 0
    thresholds: MonitorThresholds = MonitorThresholds()

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        duration_seconds(value)
        return value


class LabelSpec(Strict):
    """How ``tunewise label`` builds the labelling queue from a drifted window and serves the page to label on."""

    queue_size: int = Field(64, ge=1)
    """Items queued per call."""
    diverse_share: float = Field(0.5, ge=0, le=1)
    """Share of the queue picked for embedding coverage (k-means++ over the window's inputs); the rest by
    informativeness (invalid outputs, low confidence, far from the reference, disagreement with the teacher)."""
    teacher: str | None = None
    """A candidate of the spec whose disagreement with the champion marks an item as informative."""
    overlap: int = Field(0, ge=0)
    """Items every labeller is shown, for inter-annotator agreement."""
    port: int = Field(8765, ge=0, le=65535)
    host: str = "127.0.0.1"
    seed: int = 0


class RefreshSpec(Strict):
    """How ``tunewise refresh`` trains a challenger and when it may replace the champion."""

    registered_model: str | None = None
    """The MLflow registered model whose alias is moved (default: ``<name>-lora``, what ``tunewise train``
    registers)."""
    alias: str = "champion"
    every: str | None = "90d"
    """Cadence: a refresh is due once the champion is this old (``null``: only drift makes it due)."""
    warm_start: bool = True
    """The challenger continues training from the champion's adapter (``train.init_adapter``) rather than from fresh
    LoRA weights: the new rows refine what the champion learnt, and replay keeps it from forgetting."""
    replay: float = Field(0.5, ge=0, lt=1)
    """Share of the challenger's training rows drawn from the champion's data, so old cases are not forgotten."""
    golden: str = "dev"
    """The pinned golden set: a split of the champion's dataset version, or a JSONL path."""
    golden_size: int | None = Field(None, ge=1)
    """Score only the first N golden examples (seeded order)."""
    margin: float = Field(0.02, ge=0, lt=1)
    """Non-inferiority margin on the golden set: the challenger may be at most this much worse (the lower bound of the
    paired 95% CI of challenger minus champion must stay above ``-margin``)."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Significance of the superiority test on the new slice (the golden set's non-inferiority uses the 95% CI)."""
    min_new: int = Field(16, ge=1)
    """Labelled new examples needed before a challenger is trained."""
    new_eval_share: float = Field(0.5, gt=0, lt=1)
    """Share of the new labelled rows held out (by group when ``data.group_field`` is set) to test superiority on."""

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None:
            duration_seconds(value)
        return value
