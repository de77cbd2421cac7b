"""Build the monitor-and-refresh cases from the shared data: a reference the champion is trained on, production
traffic that has drifted, and control traffic that has not.

    python examples/drift/make_cases.py OUT_DIR [--data ../shared/data]

- ``receipts-stores``: SROIE receipts split by company. The champion learns the receipts of ~70% of the companies;
  production brings receipts of companies it never saw. Control traffic: held-out receipts of the known companies.
- ``banking-intents``: 20 Banking77 intents. The champion learns 15; production brings all 20 (the 5 new ones a
  quarter of the traffic). Control traffic: unseen messages of the 15 known intents, drawn like the champion's.

Each case folder gets ``tunewise.yaml``, ``data/{train,dev}.jsonl`` (the champion's), ``production.jsonl`` and
``control.jsonl`` (inputs with ``created`` timestamps over two weeks and their gold targets, for the simulated
labeller). Nothing is random but seeded: the same command writes the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: production starts here
TWO_WEEKS = 14 * 86400.0


def _rank(seed: str, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _timestamps(rows: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    stamped = [{**r, "created": START + rng.random() * TWO_WEEKS} for r in rows]
    return sorted(stamped, key=lambda r: r["created"])


def receipts_case(data: Path, out: Path) -> None:
    rows = _read(data / "sroie" / "train.jsonl") + _read(data / "sroie" / "dev.jsonl")
    for row in rows:
        row["store"] = " ".join(str(row["fields"]["company"]).upper().split())
    companies = sorted({r["store"] for r in rows}, key=lambda c: _rank("stores", c))
    new = set(companies[: round(0.3 * len(companies))])
    known = [r for r in rows if r["store"] not in new]
    unseen = [r for r in rows if r["store"] in new]
    rng = random.Random(0)
    rng.shuffle(known)
    n_dev, n_control = round(0.15 * len(known)), round(0.15 * len(known))
    dev, control, train = known[:n_dev], known[n_dev : n_dev + n_control], known[n_dev + n_control :]
    _write(out / "data" / "train.jsonl", train)
    _write(out / "data" / "dev.jsonl", dev)
    _write(out / "production.jsonl", _timestamps(unseen, rng))
    _write(out / "control.jsonl", _timestamps(control, rng))
    spec = (HERE / "receipts-stores.yaml.tmpl").read_text(encoding="utf-8")
    (out / "tunewise.yaml").write_text(spec, encoding="utf-8")
    (out / "schema.json").write_text((HERE.parent / "receipts" / "schema.json").read_text(encoding="utf-8"))
    print(
        f"receipts-stores: {len(train)} train, {len(dev)} dev, {len(control)} control (known stores); "
        f"{len(unseen)} production receipts of {len(new)} new stores"
    )


def banking_case(data: Path, out: Path) -> None:
    labels = sorted(json.loads((data / "banking77" / "labels.json").read_text()), key=lambda x: _rank("intents", x))
    chosen = labels[:20]
    new = set(chosen[15:])
    pool = [r for r in _read(data / "banking77" / "train.jsonl") if r["label"] in chosen]
    rng = random.Random(0)
    rng.shuffle(pool)
    # One random split of the known intents' messages: the champion's train and dev, the control traffic and the
    # known part of production all follow the same distribution, so only the new intents differ.
    known = [r for r in pool if r["label"] not in new]
    unseen = [r for r in pool if r["label"] in new]
    train, dev, control, known_prod = known[:600], known[600:810], known[810:1210], known[1210:1510]
    production = known_prod + unseen[:100]
    _write(out / "data" / "train.jsonl", train)
    _write(out / "data" / "dev.jsonl", dev)
    _write(out / "production.jsonl", _timestamps(production, rng))
    _write(out / "control.jsonl", _timestamps(control, rng))
    spec = (HERE / "banking-intents.yaml.tmpl").read_text(encoding="utf-8")
    spec = spec.replace("LABELS", json.dumps(sorted(chosen)))
    (out / "tunewise.yaml").write_text(spec, encoding="utf-8")
    print(
        f"banking-intents: {len(train)} train, {len(dev)} dev ({len(chosen) - len(new)} intents); "
        f"production {len(production)} ({len(unseen[:100])} of the new intents {sorted(new)}), control {len(control)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=HERE.parents[2] / "shared" / "data")
    args = parser.parse_args()
    receipts_case(args.data, args.out / "receipts-stores")
    banking_case(args.data, args.out / "banking-intents")


if __name__ == "__main__":
    main()
