"""Measure the monitor-and-refresh cases built by ``make_cases.py`` (the figures in docs/monitor.md).

    python examples/drift/measure.py CASES_DIR outputs     # the champion answers production and control traffic
    python examples/drift/measure.py CASES_DIR false-alarms  # 40 no-drift windows per case
    python examples/drift/measure.py CASES_DIR drift         # tunewise monitor on each case's production traffic
    python examples/drift/measure.py CASES_DIR queue         # the labelling queue: does it prefer the new inputs?
    python examples/drift/measure.py CASES_DIR refresh --n 64  # label N queued items (gold = the expert), refresh

Each case's champion is ``tunewise train -c CASE --dataset latest --name champion`` promoted to the ``champion``
alias. Traffic answers come from the champion on llama.cpp (the served engine; with the schema's grammar for
``extract``, as ``tunewise serve`` applies it), written as traffic JSONL with the synthetic ``created`` times.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import time
from pathlib import Path
from typing import Any

from tunewise.config import CandidateSpec, ModelSpec, Project, load_project
from tunewise.eval.runner import evaluate
from tunewise.label import build_queue, import_labels
from tunewise.label.record import LabelEntry
from tunewise.label.store import append_label, labels_path
from tunewise.models.local import directory_sha256
from tunewise.monitor import monitor
from tunewise.refresh import refresh

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
    out = project.state_dir / "runs" / f"served-{name}-{int(time.time())}"
    evaluate(
        project, data_path=source, candidates=[candidate], extra_models={"champion-lora": model}, out=out, track=False
    )
    predictions = {}
    for line in (out / "predictions.jsonl").read_text().splitlines():
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


def traffic_file(project: Project, name: str) -> Path:
    """The answered traffic when the champion answered it, else the inputs alone."""
    served = project.root / f"{name}.served.jsonl"
    return served if served.is_file() else project.root / f"{name}.jsonl"


def is_new(project: Project, row: dict[str, Any]) -> bool:
    """Whether a production row is of the drifted kind: a store or an intent the champion never saw."""
    return _kind(row) not in _known_kinds(project.root)


def _kind(row: dict[str, Any]) -> str:
    return str(row["store"] if "store" in row else row["label"])


@functools.cache
def _known_kinds(root: Path) -> frozenset[str]:
    rows = [json.loads(x) for name in ("train", "dev") for x in _lines(root / "data" / f"{name}.jsonl")]
    return frozenset(_kind(r) for r in rows)


def _lines(path: Path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x.strip()]


def _reference_outputs(project: Project) -> list[str] | None:
    """The champion's answers to the reference dev inputs from the latest monitor run (the eval's predictions)."""
    runs = sorted((project.state_dir / "runs").glob("monitor-reference-*"))
    if not runs:
        return None
    rows = [json.loads(x) for x in _lines(runs[-1] / "predictions.jsonl")]
    return [r["output"] for r in rows]


def drift(project: Project) -> None:
    report = monitor(project, source=traffic_file(project, "production"), track=False, progress=False)
    _print_report(project, "production", report)


def _print_report(project: Project, what: str, report: Any) -> None:
    print(f"{project.spec.name} {what}: verdict {report.verdict}, n {report.n_window} vs {report.n_reference}")
    for s in report.signals:
        print(
            f"  {s.name}: {s.status} ref {s.reference_value} win {s.window_value} effect {s.effect} "
            f"[{s.ci_low}, {s.ci_high}] p {s.p_value} p_holm {s.p_adjusted}"
        )


def false_alarms(project: Project, n_windows: int, size: int) -> None:
    outputs = _reference_outputs(project)
    verdicts: dict[str, int] = {}
    signals: dict[str, int] = {}
    began = time.perf_counter()
    for path in window_files_from(project, "control", n_windows, size):
        report = monitor(project, source=path, reference_outputs=outputs, track=False, progress=False)
        verdicts[report.verdict] = verdicts.get(report.verdict, 0) + 1
        for s in report.signals:
            if s.status == "drift":
                signals[s.name] = signals.get(s.name, 0) + 1
    alarms = verdicts.get("drift", 0)
    print(
        f"{project.spec.name}: {n_windows} no-drift windows of {size}: verdicts {verdicts}; "
        f"false-alarm rate {alarms / n_windows:.3f}; drift by signal {signals}; "
        f"{time.perf_counter() - began:.0f} s"
    )


def window_files_from(project: Project, name: str, n_windows: int, size: int) -> list[Path]:
    rows = [json.loads(x) for x in _lines(traffic_file(project, name))]
    folder = project.root / "windows" / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n_windows):
        sample = random.Random(index).sample(rows, min(size, len(rows)))
        path = folder / f"{index:02d}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample))
        paths.append(path)
    return paths


def mixed_window(project: Project) -> Path:
    """Production traffic plus the known kind (control), as one window: what the queue chooses from."""
    if project.spec.task.kind == "classify":
        return traffic_file(project, "production")  # already mixed: 3/4 known intents, 1/4 new
    rows = [json.loads(x) for x in _lines(traffic_file(project, "production"))]
    rows += [json.loads(x) for x in _lines(traffic_file(project, "control"))]
    path = project.root / "mixed.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sorted(rows, key=lambda r: r["created"])))
    return path


def queue(project: Project, size: int) -> Any:
    source = mixed_window(project)
    rows = {str(r["id"]): r for r in (json.loads(x) for x in _lines(source))}
    spec = project.spec.label.model_copy(update={"queue_size": size})
    built = build_queue(project, source=source, spec=spec)
    share_window = sum(is_new(project, r) for r in rows.values()) / len(rows)
    share_queue = sum(is_new(project, rows[item.id]) for item in built.items) / len(built.items)
    informative = [item for item in built.items if "coverage" not in item.reasons]
    share_informative = sum(is_new(project, rows[item.id]) for item in informative) / max(1, len(informative))
    reasons: dict[str, int] = {}
    for item in built.items:
        for reason in item.reasons:
            key = reason.split(":")[0].split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
    print(
        f"{project.spec.name}: queue {len(built.items)} of {len(rows)}; new kind {share_queue:.2f} of the queue "
        f"vs {share_window:.2f} of the window ({share_informative:.2f} of its {len(informative)} informative picks); "
        f"reasons {reasons}"
    )
    return built, rows


def label_and_refresh(project: Project, n: int, *, promote: bool, epochs: float) -> None:
    built, rows = queue(project, n)
    target_field = project.spec.data.target_field
    path = labels_path(built)
    for item in built.items:  # the simulated expert: the data set's gold answer
        gold = rows[item.id][target_field]
        action = "accept" if gold == item.prefill else "correct"
        append_label(path, LabelEntry(item=item.id, labeller="gold", action=action, target=gold, time=time.time()))
    imported = import_labels(project, built.id)
    print(f"imported {imported.rows} labels as version {imported.version[:12]}")
    began = time.perf_counter()
    # The challenger's budget in epochs over new + replay rows (not the champion's fixed step count), so that 16
    # labels are not seen 12 times over while 64 are seen 3 times.
    spec = project.spec.train.model_copy(update={"max_steps": None, "epochs": epochs})
    decision = refresh(project, dataset=imported.version, promote=promote, progress=False, train_spec=spec)
    print(f"refresh in {time.perf_counter() - began:.0f} s")
    print(json.dumps(decision.to_dict(), indent=1, default=str)[:6000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", type=Path)
    parser.add_argument("step", choices=["outputs", "false-alarms", "drift", "queue", "refresh"])
    parser.add_argument("--case", choices=CASES, action="append")
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--size", type=int, default=None, help="rows per no-drift window (default 100, 30 receipts)")
    parser.add_argument("--n", type=int, default=64, help="items queued and labelled")
    parser.add_argument("--no-promote", action="store_true", help="refresh: record the gate, leave the alias")
    parser.add_argument("--epochs", type=float, default=3, help="refresh: the challenger's epochs over its rows")
    args = parser.parse_args()
    for case in args.case or CASES:
        project = load_project(args.cases / case)
        if args.step == "outputs":
            for name in TRAFFIC:
                served_outputs(project, name)
        elif args.step == "drift":
            drift(project)
        elif args.step == "false-alarms":
            size = args.size or (30 if project.spec.task.kind == "extract" else 100)
            false_alarms(project, args.windows, size)
        elif args.step == "queue":
            queue(project, args.n)
        else:
            label_and_refresh(project, args.n, promote=not args.no_promote, epochs=args.epochs)


if __name__ == "__main__":
    main()
