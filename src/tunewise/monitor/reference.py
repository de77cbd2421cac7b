"""The reference production is compared with: the champion's training and dev inputs.

The champion's dataset version is the one its registered model version was trained on (``tunewise train`` tags it
``dataset``); without a champion, the spec's ``monitor.reference`` or the latest version; without any version, the
spec's data files.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from tunewise.config import Project
from tunewise.data.versions import list_versions, load_version
from tunewise.errors import InputError
from tunewise.examples import load_examples
from tunewise.records import Example, Record
from tunewise.tracking import registered_aliases


@dataclass(frozen=True, kw_only=True)
class Reference(Record):
    """Reference inputs (a seeded sample) and where they come from."""

    source: str
    """``dataset <hash>`` or the data files read."""
    dataset_hash: str | None
    train: list[Example]
    dev: list[Example]
    dev_pool: list[Example] = dataclasses.field(default_factory=list)
    """Every dev example (in a seeded order), not only the sampled ones: the watched model's answers to as many of
    them as ``monitor.reference_outputs`` allows are the output reference (more answers, more power)."""

    @property
    def examples(self) -> list[Example]:
        return [*self.train, *self.dev]


def champion_dataset(project: Project) -> str | None:
    """The dataset version hash the champion alias's model version was trained on, if the store knows it."""
    registered, alias = project.spec.registered_model, project.spec.refresh.alias
    for target in registered_aliases(project):
        if target.model == registered and target.alias == alias:
            return target.tags.get("dataset")
    return None


def load_reference(project: Project, *, ref: str | None = None, size: int | None = None, seed: int = 0) -> Reference:
    """The reference inputs: ``ref`` (a dataset version), else the champion's, else the latest, else the data files.

    Args:
        size: keep at most this many examples in all (default ``monitor.reference_size``), train and dev sampled in
            proportion with ``seed``.

    Raises:
        InputError: the named version does not exist, or there are no data at all.
    """
    size = size if size is not None else project.spec.monitor.reference_size
    ref = ref or project.spec.monitor.reference or _champion_version(project)
    if ref is None and list_versions(project):
        ref = "latest"
    if ref is not None:
        version = load_version(project, ref)
        train = version.read_split("train") if "train" in version.splits else []
        dev = version.read_split("dev") if "dev" in version.splits else []
        source, digest = f"dataset {version.hash[:12]}", version.hash
    else:
        data = project.spec.data
        train = load_examples(project, project.split_path("train")) if data.train else []
        dev = load_examples(project, project.split_path("dev")) if data.dev else []
        source, digest = ", ".join(f for f in (data.train, data.dev) if f), None
    if not train and not dev:
        raise InputError("no reference data: declare data.train / data.dev or prepare a dataset version")
    pool = random.Random(seed).sample(dev, len(dev))
    train, dev = _sample(train, dev, size, seed)
    return Reference(source=source, dataset_hash=digest, train=train, dev=dev, dev_pool=pool)


def _champion_version(project: Project) -> str | None:
    digest = champion_dataset(project)
    if digest is None:
        return None
    try:
        return load_version(project, digest).hash
    except InputError:  # trained on the spec's files, not on a version: the caller falls back
        return None


def _sample(train: list[Example], dev: list[Example], size: int, seed: int) -> tuple[list[Example], list[Example]]:
    total = len(train) + len(dev)
    if total <= size:
        return train, dev
    rng = random.Random(seed)
    n_dev = round(size * len(dev) / total)
    return rng.sample(train, size - n_dev), rng.sample(dev, n_dev)
