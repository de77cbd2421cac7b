"""Run by the resume and multi-process tests in a fresh interpreter: ``python train_script.py MODE WORKDIR MODEL_DIR``.

MODE: ``full`` (uninterrupted), ``killed`` (SIGKILLs itself right after step 5, with a checkpoint at step 4),
``resume`` (continues the killed run), ``ddp`` (under torchrun: writes each rank's adapter fingerprint).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

from tests.support.train_project import make_project, tiny_spec  # noqa: E402
from tunewise.train import train  # noqa: E402


def main(mode: str, workdir: Path, model_dir: Path) -> None:
    project = make_project(workdir / mode.split("-")[0], n_train=12)
    spec = tiny_spec(
        model_dir,
        max_steps=6,
        dropout=0.1,
        eval_every=1,
        eval_examples=2,
        early_stopping_patience=None,
        checkpoint_every=2,
        keep_checkpoints=5,
    )
    if mode == "killed":

        def kill(step: int, value: float) -> None:
            if step == 5:
                os.kill(os.getpid(), signal.SIGKILL)

        train(project, spec, run_name="run", track=False, progress=False, on_eval=kill)
    elif mode in ("full", "resume"):
        project = make_project(workdir / ("killed" if mode == "resume" else "full"), n_train=12)
        result = train(project, spec, run_name="run", resume=mode == "resume", track=False, progress=False)
        (workdir / f"{mode}.json").write_text(json.dumps(result.to_dict(), default=str))
    elif mode.startswith("ddp"):
        accumulation = int(mode.split("-")[1])
        spec = spec.model_copy(update={"gradient_accumulation": accumulation, "dropout": 0.0})
        result = train(project, spec, run_name="run", track=False, progress=False)
        rank = int(os.environ.get("RANK", "0"))
        (workdir / f"{mode}-rank{rank}.json").write_text(json.dumps(result.to_dict(), default=str))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
