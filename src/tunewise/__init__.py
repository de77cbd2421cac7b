"""tunewise: does fine-tuning an LLM pay off for this task? Measure it, then train, serve and monitor."""

from tunewise.errors import BackendError, InputError, TunewiseError
from tunewise.eval import evaluate
from tunewise.records import CandidateResult, Completion, EvalSummary, Example, MetricValue, PairedComparison, Prediction
from tunewise.spec import Project, ProjectSpec, load_project

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "CandidateResult",
    "Completion",
    "EvalSummary",
    "Example",
    "InputError",
    "MetricValue",
    "PairedComparison",
    "Prediction",
    "Project",
    "ProjectSpec",
    "TunewiseError",
    "evaluate",
    "load_project",
]
