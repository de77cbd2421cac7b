"""Data curation: validate, de-duplicate, redact PII, split without leakage, check label quality, version.

The train and eval stages consume a dataset version by its hash::

    from tunewise.data import load_version
    version = load_version(project, "latest")
    train = version.read_split("train")   # list[Example]
"""

from tunewise.data.agreement import cohen_kappa, krippendorff_alpha_nominal
from tunewise.data.build import PrepareResult, prepare
from tunewise.data.card import DatasetCard
from tunewise.data.check import CheckReport, check_files
from tunewise.data.load import DataProblems
from tunewise.data.pii import RECOGNIZERS, detect, register_recognizer
from tunewise.data.sample import SampleResult, sample_file
from tunewise.data.versions import DatasetVersion, diff_versions, list_versions, load_version, log_dataset_version

__all__ = [
    "RECOGNIZERS",
    "CheckReport",
    "DataProblems",
    "DatasetCard",
    "DatasetVersion",
    "PrepareResult",
    "SampleResult",
    "check_files",
    "cohen_kappa",
    "detect",
    "diff_versions",
    "krippendorff_alpha_nominal",
    "list_versions",
    "load_version",
    "log_dataset_version",
    "prepare",
    "register_recognizer",
    "sample_file",
]
