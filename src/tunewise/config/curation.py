"""The ``curation:`` section of ``tunewise.yaml``: every knob of ``tunewise data prepare``, with its default."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tunewise.config.base import Strict

PiiMode = Literal["off", "report", "mask", "hash", "drop_row"]
SplitMode = Literal["auto", "keep", "resplit"]
LeakageAction = Literal["report", "move", "drop"]


class CurationSpec(Strict):
    """How raw rows become a dataset version. Unknown keys are errors."""

    dedup_exact: bool = True
    """Drop rows whose normalised input equals an earlier row's (the first is kept)."""
    near_dup_threshold: float = Field(0.8, gt=0, le=1)
    """Estimated Jaccard similarity of input shingles at or above which two rows are near-duplicates."""
    drop_near_duplicates: bool = True
    """Drop a near-duplicate whose target equals its twin's (one row kept); False: only list them in the card.
    Near-duplicates with a different target are always kept and listed for review."""
    shingle_size: int = Field(3, ge=1, le=20)
    """Words per shingle for MinHash."""
    num_perm: int = Field(128, ge=16, le=1024)
    """MinHash permutations (more: slower, more precise estimates)."""
    pii_mode: PiiMode = "mask"
    """``report`` counts only; ``mask`` -> ``[EMAIL]``; ``hash`` -> ``[EMAIL_1a2b3c4d]`` (salted, stable);
    ``drop_row`` drops every row holding PII."""
    pii_types: list[str] | None = None
    """Recognizers to run (default: all registered)."""
    pii_salt_env: str = "TUNEWISE_PII_SALT"
    """Environment variable holding the salt of ``hash`` mode (never stored; only its digest is recorded)."""
    split: SplitMode = "auto"
    """``keep`` the spec's train/dev/test files; ``resplit`` pools them and splits by ``split_ratios``;
    ``auto``: keep when the spec declares dev or test, otherwise resplit."""
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """train / dev / test fractions for ``resplit``."""
    seed: int = 0
    group_key: str | None = None
    """Rows sharing this key stay in one split: a row field, or a dotted path such as ``target.company``.
    Default: the spec's ``data.group_field``."""
    stratify: bool = True
    """For ``classify``: keep label proportions equal across splits."""
    leakage_threshold: float | None = Field(None, gt=0, le=1)
    """Jaccard threshold of the cross-split leakage check (default: ``near_dup_threshold``)."""
    leakage_action: LeakageAction = "report"
    """What to do with a dev/test row that has a near twin in train: report it, move it to train, or drop it."""
    annotator_field: str | None = None
    """Rows carrying this field are annotations: rows with the same id are merged by majority vote and
    inter-annotator agreement is reported."""
    grounding: bool = True
    """For ``extract``: report target values that never occur in the input."""

    @model_validator(mode="after")
    def _check_ratios(self) -> CurationSpec:
        if any(r < 0 for r in self.split_ratios) or abs(sum(self.split_ratios) - 1.0) > 1e-6:
            raise ValueError("split_ratios must be three non-negative numbers summing to 1")
        if self.split_ratios[0] <= 0:
            raise ValueError("split_ratios must give train a positive share")
        return self

    @property
    def effective_leakage_threshold(self) -> float:
        return self.leakage_threshold if self.leakage_threshold is not None else self.near_dup_threshold
