"""Data curation: validate, de-duplicate, redact PII, split without leakage, check label quality, version.

The train and eval stages consume a dataset version by its hash::

    from tunewise.data import load_version
    version = load_version(project, "latest")
    train = version.read_split("train")   # list[Example]

Names are imported lazily so that ``tunewise.spec`` can import :mod:`tunewise.data.config` without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "cohen_kappa": "agreement",
    "krippendorff_alpha_nominal": "agreement",
    "CheckReport": "check",
    "check_files": "check",
    "CurationSpec": "config",
    "DataProblems": "load",
    "RECOGNIZERS": "pii",
    "detect": "pii",
    "register_recognizer": "pii",
    "PrepareResult": "build",
    "prepare": "build",
    "SampleResult": "sample",
    "sample_file": "sample",
    "DatasetVersion": "versions",
    "diff_versions": "versions",
    "list_versions": "versions",
    "load_version": "versions",
    "log_dataset_version": "versions",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tunewise.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tunewise.data.{_EXPORTS[name]}"), name)
