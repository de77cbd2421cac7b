"""Exact resume after SIGKILL, and data-parallel training with 2 processes (gloo, CPU)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("train_script.py")


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    return env


def _run(*args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _final_adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    last = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    assert last.name == "step-000006"
    return torch.load(last / "state.pt", weights_only=False)["adapter"]


def test_sigkilled_run_resumes_to_the_same_adapter(tmp_path, tiny_model_dir):
    full = _run(str(SCRIPT), "full", str(tmp_path), str(tiny_model_dir))
    assert full.returncode == 0, full.stderr[-3000:]
    killed = _run(str(SCRIPT), "killed", str(tmp_path), str(tiny_model_dir))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run_dir = tmp_path / "killed" / ".tunewise" / "runs" / "train-run"
    assert [p.name for p in sorted((run_dir / "checkpoints").glob("step-*"))] == ["step-000002", "step-000004"]
    assert not (tmp_path / "killed" / ".tunewise" / "adapters" / "run").exists()
    resumed = _run(str(SCRIPT), "resume", str(tmp_path), str(tiny_model_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    reference = _final_adapter(tmp_path / "full" / ".tunewise" / "runs" / "train-run")
    result = _final_adapter(run_dir)
    assert reference.keys() == result.keys()
    for name in reference:
        assert torch.allclose(reference[name], result[name], atol=1e-6), name
    full_result = json.loads((tmp_path / "full.json").read_text())
    resumed_result = json.loads((tmp_path / "resume.json").read_text())
    assert [h["loss"] for h in resumed_result["history"]] == [h["loss"] for h in full_result["history"]]
    assert resumed_result["final_step"] == 6 and resumed_result["train_tokens"] == full_result["train_tokens"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_agree_and_match_one_process(tmp_path, tiny_model_dir):
    launcher = [
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
    ]
    ddp = _run(*launcher, str(SCRIPT), "ddp-2", str(tmp_path), str(tiny_model_dir), timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"ddp-2-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["adapter_fingerprint"] == ranks[1]["adapter_fingerprint"]
    assert [h["loss"] for h in ranks[0]["history"]] == [h["loss"] for h in ranks[1]["history"]]
    # one process accumulating 4 micro-batches sees the same global batches as 2 processes accumulating 2 each
    single = _run(str(SCRIPT), "ddp-4", str(tmp_path / "single"), str(tiny_model_dir))
    assert single.returncode == 0, single.stderr[-3000:]
    two = _final_adapter(tmp_path / "ddp" / ".tunewise" / "runs" / "train-run")
    one = _final_adapter(tmp_path / "single" / "ddp" / ".tunewise" / "runs" / "train-run")
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name
