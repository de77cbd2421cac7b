"""Measure the monitor-and-refresh cases built by ``make_cases.py`` (the figures in docs/monitor.md).

    python examples/drift/measure.py CASES_DIR outputs     # the champion answers production and control traffic
    python examples/drift/measure.py CASES_DIR false-alarms  # 40 no-drift windows per case
    python examples/drift/measure.py CASES_DIR drift         # tunewise monitor on each case's production traffic

Each case's champion is ``tunewise train -c CASE --dataset latest --name champion`` promoted to the ``champion``
alias. Traffic answers come from the champion on llama.cpp (the served engine; with the schema's grammar for
``extract``, as ``tunewise serve`` applies it), written as traffic JSONL with the synthetic ``created`` times.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from tunewise.config import CandidateSpec, ModelSpec, Project, load_project
from tunewise.eval.runner import evaluate
from tunewise.models.local import directory_sha256

CASES = ("banking-intents", "receipts-stores")
TRAFFIC = ("production", "control")


def champion_dir(project: Project) -> Path:
    return project.state_dir / "adapters" / "champion"


def served_outputs(project: Project, name: str) -> Path:
    """``<name>.served.jsonl``: the traffic rows with the champion's answers and its version."""
    source = project.root / f"{name}.jsonl"
    target = project.root / f"{name}.served.jsonl"
    adapter = champion_dir(project)
    model = ModelSpec(backend="local", path=project.spec.train.base_model, adapter=str(adapter), engine="llamacpp")
    candidate = CandidateSpec(name="champion", model="champion-lora", constrained=project.spec.task.kind == "extract")
    summary = evaluate(
        project,
        data_path=source,
        candidates=[candidate],
        extra_models={"champion-lora": model},
        out=project.state_dir / "runs" / f"served-{name}-{int(time.time())}",
        track=False,
    )
    predictions = {}
    for line in (Path(summary.run_dir) / "predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        predictions[row["id"]] = row
    version = directory_sha256(adapter)
    rows = []
    for line in source.read_text().splitlines():
        row: dict[str, Any] = json.loads(line)
        answer = predictions[str(row["id"])]
        rows.append({**row, "output": answer["output"], "model_version": version})
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{project.spec.name}: {len(rows)} {name} answers -> {target}")
    return target


def window_files(project: Project, name: str, n_windows: int, size: int, seed: int = 0) -> list[Path]:
    """``n_windows`` windows of ``size`` rows drawn (seeded) from ``<name>.served.jsonl``, each its own file."""
    rows = [json.loads(x) for x in (project.root / f"{name}.served.jsonl").read_text().splitlines()]
    folder = project.root / "windows" / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n_windows):
        sample = random.Random(seed * 1000 + index).sample(rows, min(size, len(rows)))
        path = folder / f"{index:02d}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", type=Path)
    parser.add_argument("step", choices=["outputs", "false-alarms", "drift"])
    parser.add_argument("--case", choices=CASES, action="append")
    args = parser.parse_args()
    for case in args.case or CASES:
        project = load_project(args.cases / case)
        if args.step == "outputs":
            for name in TRAFFIC:
                served_outputs(project, name)


if __name__ == "__main__":
    main()
