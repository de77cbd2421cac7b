"""tunewise: does fine-tuning an LLM pay off for this task? Measure it, then train, serve and monitor.

The verbs, one per stage, each taking a loaded :class:`Project`::

    import tunewise
    project = tunewise.load_project("examples/receipts")
    baseline = tunewise.evaluate(project)            # EvalSummary
    decision = tunewise.decide(project)              # Decision
    version = tunewise.prepare(project).version      # DatasetVersion
    adapter = tunewise.train(project, dataset=version.hash)   # TrainResult
    exported = tunewise.export(adapter.adapter_dir)  # ExportResult
    tunewise.serve(project)                          # the OpenAI-compatible server (blocks)
    with tunewise.start_server(project, port=0) as server: ...  # in the background: server.base_url
    drift = tunewise.persona_eval(project)           # PersonaResult: persona drift by turn, per candidate
    report = tunewise.monitor(project)               # DriftReport: production traffic against the reference
    queue = tunewise.build_queue(project)            # LabelQueue: drifted inputs worth labelling
    tunewise.import_labels(project)                  # LabelImport: the labels as a new dataset version
    outcome = tunewise.refresh(project)              # RefreshDecision: challenger vs champion, promoted or not
    result = tunewise.run_pipeline(project)          # all of the above, with one report
"""

from tunewise.config import Project, ProjectSpec, load_project, project_from_dict
from tunewise.data import prepare
from tunewise.decide import Decision, decide
from tunewise.errors import BackendError, InputError, TunewiseError
from tunewise.eval import evaluate
from tunewise.export import export_adapter as export
from tunewise.label import LabelImport, LabelQueue, build_queue, import_labels
from tunewise.monitor import DriftReport, monitor
from tunewise.persona import PersonaResult, persona_eval
from tunewise.pipeline import PipelineResult, run_pipeline
from tunewise.records import (
    CandidateResult,
    Completion,
    EvalSummary,
    Example,
    MetricValue,
    PairedComparison,
    Prediction,
)
from tunewise.refresh import RefreshDecision, refresh
from tunewise.serve import RunningServer, ServedModel, serve, start_server
from tunewise.train import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "CandidateResult",
    "Completion",
    "Decision",
    "DriftReport",
    "EvalSummary",
    "Example",
    "InputError",
    "LabelImport",
    "LabelQueue",
    "MetricValue",
    "PairedComparison",
    "PersonaResult",
    "PipelineResult",
    "Prediction",
    "Project",
    "ProjectSpec",
    "RefreshDecision",
    "RunningServer",
    "ServedModel",
    "TrainResult",
    "TunewiseError",
    "build_queue",
    "decide",
    "evaluate",
    "export",
    "import_labels",
    "load_project",
    "monitor",
    "persona_eval",
    "prepare",
    "project_from_dict",
    "refresh",
    "run_pipeline",
    "serve",
    "start_server",
    "train",
]
