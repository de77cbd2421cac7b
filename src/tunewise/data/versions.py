"""Content-addressed dataset versions under ``.tunewise/datasets/<sha256>/``: write once, load by hash or prefix.

The hash covers the sources' bytes, every parameter and :data:`FORMAT_VERSION`, so identical inputs give the
same version and a version directory, once renamed into place, is never rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.config import Project
from tunewise.data.card import DatasetCard, DataSource
from tunewise.data.normalize import canonical_json, content_hash
from tunewise.errors import InputError
from tunewise.io.atomic import atomic_dir, file_sha256
from tunewise.records import Example, Record

FORMAT_VERSION = 1
"""Bumped whenever the records or the curation steps change what a version holds."""
SPLIT_NAMES = ("train", "dev", "test")


def store_root(project_or_root: Project | str | Path) -> Path:
    """The datasets store: ``<project>/.tunewise/datasets``; a path may be a project root or the store itself."""
    if isinstance(project_or_root, Project):
        return project_or_root.state_dir / "datasets"
    root = Path(project_or_root)
    if (root / ".tunewise").is_dir() or (root / "tunewise.yaml").is_file():
        return root / ".tunewise" / "datasets"
    return root


def version_hash(sources: list[DataSource], params: dict[str, Any]) -> str:
    """SHA-256 over the sources' split names and content hashes, the parameters and the format version."""
    keyed = [{"split": s.split, "sha256": s.sha256} for s in sources]
    payload = canonical_json({"format": FORMAT_VERSION, "sources": keyed, "params": params})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DatasetVersion(Record):
    """A written dataset version: its directory, hash and manifest."""

    path: Path
    hash: str
    manifest: dict[str, Any]

    @property
    def splits(self) -> list[str]:
        return [name for name in SPLIT_NAMES if (self.path / f"{name}.jsonl").is_file()]

    def split_path(self, split: str) -> Path:
        """The JSONL file of canonical records of ``split``.

        Raises:
            InputError: the version has no such split.
        """
        path = self.path / f"{split}.jsonl"
        if not path.is_file():
            raise InputError(
                f"dataset version {self.hash[:12]} has no '{split}' split (has: {', '.join(self.splits)})",
                file=self.path,
            )
        return path

    def read_split(self, split: str) -> list[Example]:
        """The examples of one split, as written by ``prepare``."""
        with open(self.split_path(split), encoding="utf-8") as handle:
            return [Example.from_dict(json.loads(line)) for line in handle if line.strip()]

    def card(self) -> DatasetCard:
        """The dataset card (``card.json``)."""
        return DatasetCard.from_dict(json.loads((self.path / "card.json").read_text(encoding="utf-8")))

    def card_markdown(self) -> str:
        return (self.path / "card.md").read_text(encoding="utf-8")


def _write_file(path: Path, data: str) -> None:
    # One function for every file of a version, so a test can inject a crash between two files.
    path.write_text(data, encoding="utf-8")


def split_jsonl(examples: list[Example]) -> str:
    return "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in examples)


def write_version(store: Path, digest: str, files: dict[str, str], manifest: dict[str, Any]) -> DatasetVersion:
    """Write ``files`` plus ``manifest.json`` (with every file's SHA-256) into ``store/digest`` atomically.

    An existing version is returned untouched. A crash at any point leaves no ``store/digest`` directory.
    """
    final = store / digest
    if final.is_dir():
        return open_version(final)
    try:
        with atomic_dir(final) as tmp:
            for name, text in files.items():
                _write_file(tmp / name, text)
            hashes = {name: file_sha256(tmp / name) for name in sorted(files)}
            _write_file(
                tmp / "manifest.json",
                json.dumps({**manifest, "hash": digest, "files": hashes}, indent=2, ensure_ascii=False) + "\n",
            )
    except FileExistsError:
        pass  # written meanwhile by another process: same hash, same content
    return open_version(final)


def open_version(path: Path) -> DatasetVersion:
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise InputError("not a dataset version (no manifest.json)", file=path)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return DatasetVersion(path=path, hash=path.name, manifest=manifest)


def list_versions(project_or_root: Project | str | Path) -> list[DatasetVersion]:
    """Every version in the store, oldest first (by ``created_at``, then hash)."""
    store = store_root(project_or_root)
    if not store.is_dir():
        return []
    versions = [
        open_version(p)
        for p in store.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").is_file()
    ]
    return sorted(versions, key=lambda v: (v.manifest.get("created_at", ""), v.hash))


def load_version(project_or_root: Project | str | Path, ref: str = "latest") -> DatasetVersion:
    """Find a version by full hash, unique hash prefix, or ``latest``.

    Raises:
        InputError: no version matches, or a prefix matches several.
    """
    store = store_root(project_or_root)
    versions = list_versions(store)
    if not versions:
        raise InputError("no dataset versions yet (run: tunewise data prepare)", file=store)
    if ref == "latest":
        return versions[-1]
    matches = [v for v in versions if v.hash.startswith(ref.lower())]
    if not matches:
        raise InputError(f"no dataset version matches {ref!r}", file=store)
    if len(matches) > 1:
        raise InputError(f"{ref!r} matches {len(matches)} versions; give more of the hash", file=store)
    return matches[0]


def _distribution(examples: list[Example]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for e in examples:
        if isinstance(e.target, dict):
            counts.update(f"{k} (non-empty)" for k, v in e.target.items() if v not in (None, ""))
        else:
            counts[str(e.target) if len(str(e.target)) <= 40 else "(free text)"] += 1
    return counts


def diff_versions(a: DatasetVersion, b: DatasetVersion) -> dict[str, Any]:
    """What changed from ``a`` to ``b`` per split: ids added/removed, rows whose content changed, and shifts in
    the label (classify) or field-presence (extract) distribution."""
    out: dict[str, Any] = {"from": a.hash, "to": b.hash, "splits": {}}
    for split in SPLIT_NAMES:
        old = {e.id: e for e in a.read_split(split)} if split in a.splits else {}
        new = {e.id: e for e in b.read_split(split)} if split in b.splits else {}
        if not old and not new:
            continue
        changed = sorted(i for i in old.keys() & new.keys() if content_hash(old[i]) != content_hash(new[i]))
        dist_old, dist_new = _distribution(list(old.values())), _distribution(list(new.values()))
        shifts = {
            key: {"from": dist_old[key], "to": dist_new[key], "delta": dist_new[key] - dist_old[key]}
            for key in sorted(set(dist_old) | set(dist_new))
            if dist_old[key] != dist_new[key]
        }
        out["splits"][split] = {
            "rows": {"from": len(old), "to": len(new)},
            "added": sorted(new.keys() - old.keys()),
            "removed": sorted(old.keys() - new.keys()),
            "changed": changed,
            "distribution_shift": shifts,
        }
    return out


def log_dataset_version(version: DatasetVersion, *, context: str = "training", split: str | None = None) -> None:
    """Log a version as a dataset input of the active MLflow run (name, digest, local source path).

    MLflow stores at most 36 characters of digest; the full hash goes into the input's tags.

    Raises:
        RuntimeError: no MLflow run is active.
    """
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    if mlflow.active_run() is None:
        raise RuntimeError("log_dataset_version needs an active MLflow run")
    source = str(version.split_path(split) if split else version.path)
    name = f"tunewise-{version.hash[:12]}" + (f"-{split}" if split else "")
    dataset = MetaDataset(LocalArtifactDatasetSource(source), name=name, digest=version.hash[:36])
    mlflow.log_input(
        dataset, context=context, tags={"tunewise.dataset_hash": version.hash, "tunewise.split": split or "all"}
    )
