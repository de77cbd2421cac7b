"""The zero-egress guard end to end, inside a network namespace that has only loopback (``unshare -n``).

An evaluation of the embedded model under ``targets.self_hosted_only`` passes and records the guard on; a hosted
candidate fails fast naming its host. The namespace is the second wall: nothing could leave even if the guard failed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "tunewise.cli.main"]


def _loopback_only_namespace_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    try:
        done = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not _loopback_only_namespace_available(),
        reason="`unshare -n` is not permitted here (needs root or user namespaces)",
    ),
]


def _offline(command: list[str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a fresh network namespace whose only interface is loopback."""
    script = f"ip link set lo up && exec {shlex.join(command)}"
    return subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=timeout)


def _receipts(tmp_path: Path, **changes: Any) -> Path:
    """The receipts example, zero-shot only, short answers, ``targets.self_hosted_only: true``; ``changes`` merge in."""
    project = tmp_path / "receipts"
    shutil.copytree(ROOT / "examples" / "receipts", project, ignore=shutil.ignore_patterns(".tunewise"))
    spec = yaml.safe_load((project / "tunewise.yaml").read_text())
    spec["targets"]["self_hosted_only"] = True
    spec["candidates"] = [c for c in spec["candidates"] if c["name"] == "zero-shot"]
    spec["eval"]["max_new_tokens"] = 16
    for key, value in changes.items():
        spec[key] = value
    (project / "tunewise.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return project


def test_eval_on_the_embedded_model_passes_offline_and_records_the_guard(tmp_path: Path) -> None:
    project = _receipts(tmp_path)
    out = tmp_path / "run"
    done = _offline([*CLI, "eval", "-c", str(project), "--limit", "2", "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["egress_guard"] is True and summary["n_examples"] == 2
    assert "- zero-egress guard: on\n" in (out / "report.md").read_text()

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / '.tunewise' / 'mlflow.db'}")
    assert client.get_run(summary["mlflow_run_id"]).data.tags["tunewise.egress_guard"] == "on"


def test_a_hosted_candidate_fails_fast_offline_naming_its_host(tmp_path: Path) -> None:
    hosted = {"backend": "openai", "base_url": "https://api.provider.invalid/v1", "model": "m"}
    candidates = [{"name": "zero-shot", "model": "smollm2-135m"}, {"name": "cloud", "model": "hosted"}]
    project = _receipts(tmp_path, models={"hosted": hosted}, candidates=candidates)
    done = _offline([*CLI, "eval", "-c", str(project), "--limit", "2"], timeout=120)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "api.provider.invalid" in done.stderr and "'cloud'" in done.stderr
    assert not (project / ".tunewise" / "runs").exists()
