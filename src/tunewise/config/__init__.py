"""Configuration: every section of ``tunewise.yaml`` and the files beside it, validated with file, line and key.

A leaf package: it imports nothing from the stages, and every stage imports its section from here.
"""

from tunewise.config.base import SpecError, Strict
from tunewise.config.curation import CurationSpec
from tunewise.config.decide import DecideSpec, EngineeringSpec, NeedsSpec, ProbeSpec, SufficiencySpec
from tunewise.config.distill import DistillSpec
from tunewise.config.monitor import Band, LabelSpec, MonitorSpec, MonitorThresholds, RefreshSpec, duration_seconds
from tunewise.config.persona import PersonaSpec
from tunewise.config.project import Project, ProjectSpec, load_project, project_from_dict
from tunewise.config.quickstart import QuickstartSpec
from tunewise.config.sections import CandidateSpec, DataSpec, EvalSpec, ModelSpec, TargetsSpec, TaskSpec, TrackingSpec
from tunewise.config.serve import RequestLogSpec, ServeSpec
from tunewise.config.sweep import Budget, CategoricalParam, FloatParam, IntParam, SweepSpec, load_sweep
from tunewise.config.tasks import DEFAULT_METRIC, EMBEDDED_MODEL, TASK_KINDS, TASK_METRICS, TaskKind
from tunewise.config.train import TrainSpec, load_train_spec
from tunewise.config.validation import validate_section

__all__ = [
    "DEFAULT_METRIC",
    "EMBEDDED_MODEL",
    "TASK_KINDS",
    "TASK_METRICS",
    "Band",
    "Budget",
    "CandidateSpec",
    "CategoricalParam",
    "CurationSpec",
    "DataSpec",
    "DecideSpec",
    "DistillSpec",
    "EngineeringSpec",
    "EvalSpec",
    "FloatParam",
    "IntParam",
    "LabelSpec",
    "ModelSpec",
    "MonitorSpec",
    "MonitorThresholds",
    "NeedsSpec",
    "PersonaSpec",
    "ProbeSpec",
    "Project",
    "ProjectSpec",
    "QuickstartSpec",
    "RefreshSpec",
    "RequestLogSpec",
    "ServeSpec",
    "SpecError",
    "Strict",
    "SufficiencySpec",
    "SweepSpec",
    "TargetsSpec",
    "TaskKind",
    "TaskSpec",
    "TrackingSpec",
    "TrainSpec",
    "duration_seconds",
    "load_project",
    "load_sweep",
    "load_train_spec",
    "project_from_dict",
    "validate_section",
]
