"""The challenger's data: the new labelled rows split into a training part and a held-out slice (by group), plus a
seeded replay share of the champion's training rows, written as a content-addressed dataset version.

The version holds ``train`` (new rows + replay), ``dev`` (the golden set: what eval-in-the-loop selects the best
checkpoint on, as the champion's own training did) and ``test`` (the held-out new slice the superiority test runs on).
The same inputs and settings always give the same version, hence the same challenger run: a killed refresh that is
run again finds its run and resumes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from tunewise.config import Project
from tunewise.data.normalize import canonical_json
from tunewise.data.split import assign_splits
from tunewise.data.versions import FORMAT_VERSION, DatasetVersion, split_jsonl, store_root, write_version
from tunewise.errors import InputError
from tunewise.examples import spread_order
from tunewise.records import Example, Record


@dataclass(frozen=True, kw_only=True)
class ChallengerSizes(Record):
    """Rows at each step of building the challenger's data."""

    new_rows: int
    """Labelled new rows (the new version's train split)."""
    new_train: int
    new_eval: int
    """Held out for the superiority test, never trained on."""
    old_train: int
    """The champion's training rows replay was drawn from."""
    replay: int
    replay_share: float
    """``replay / (new_train + replay)``: equals ``refresh.replay`` unless the old rows ran out."""
    golden: int


@dataclass(frozen=True)
class ChallengerData:
    """The challenger's dataset version and what went into it."""

    version: DatasetVersion
    train: list[Example]
    golden: list[Example]
    new_eval: list[Example]
    sizes: ChallengerSizes


def split_new(examples: list[Example], share: float, *, seed: int) -> tuple[list[Example], list[Example]]:
    """``(train, held_out)``: about ``share`` of the rows held out, whole groups (``meta["group"]``) at a time.

    Deterministic: the same rows and seed give the same split whatever their order. Without groups a classify
    target's label proportions are kept.

    Raises:
        InputError: either part would be empty.
    """
    ids = [e.id for e in examples]
    groups = {e.id: str(e.meta["group"]) for e in examples if e.meta.get("group") is not None}
    labels = {e.id: e.target for e in examples if isinstance(e.target, str)}
    assignment = assign_splits(
        ids, ratios=(1 - share, share, 0.0), seed=seed, labels=labels or None, groups=groups or None
    )
    train = [e for e in examples if assignment[e.id] == "train"]
    held = [e for e in examples if assignment[e.id] != "train"]
    if not train or not held:
        raise InputError(
            f"{len(examples)} new rows cannot be split into a training part and a held-out slice "
            f"(refresh.new_eval_share {share}; {len(set(groups.values()))} groups): label more rows",
            field="refresh.new_eval_share",
        )
    return train, held


def replay_sample(old: list[Example], n_new: int, share: float, *, seed: int) -> list[Example]:
    """Old rows to mix in so that they are ``share`` of ``n_new + len(result)`` (fewer when ``old`` runs out).

    The sample is seeded and taken as a prefix of one fixed order, so a larger share keeps the rows a smaller one took.
    """
    wanted = round(share * n_new / (1 - share)) if share > 0 else 0
    return spread_order(old, seed)[: min(wanted, len(old))]


def build_challenger_data(
    project: Project,
    *,
    new: list[Example],
    new_ref: str,
    old_train: list[Example],
    old_ref: str,
    golden: list[Example],
    golden_ref: str,
    extra: dict[str, Any] | None = None,
) -> ChallengerData:
    """Split the new rows, add the replay share, write the version (or find it: same inputs, same hash).

    Args:
        new: the new labelled rows; ``new_ref`` identifies them (their dataset version hash).
        old_train: the champion's training rows; ``old_ref`` identifies them.
        golden: the pinned golden set (already cut to ``refresh.golden_size``); ``golden_ref`` identifies it.
        extra: provenance recorded in the manifest (champion version, …); not part of the hash.

    Raises:
        InputError: fewer than ``refresh.min_new`` new rows, or a split with an empty part.
    """
    spec, seed = project.spec.refresh, project.spec.eval.seed
    if len(new) < spec.min_new:
        raise InputError(
            f"only {len(new)} new labelled rows in {new_ref[:12]} (refresh.min_new is {spec.min_new}): label more "
            "before a challenger is trained; nothing was trained",
            field="refresh.min_new",
        )
    new_train, held = split_new(new, spec.new_eval_share, seed=seed)
    replay = _distinct_ids(replay_sample(old_train, len(new_train), spec.replay, seed=seed), new_train)
    train = spread_order([*new_train, *replay], seed)
    params = {
        "stage": "refresh",
        "new": new_ref,
        "old": old_ref,
        "golden": golden_ref,
        "golden_size": len(golden),
        "replay": spec.replay,
        "new_eval_share": spec.new_eval_share,
        "seed": seed,
    }
    digest = hashlib.sha256(canonical_json({"format": FORMAT_VERSION, "params": params}).encode()).hexdigest()
    sizes = ChallengerSizes(
        new_rows=len(new),
        new_train=len(new_train),
        new_eval=len(held),
        old_train=len(old_train),
        replay=len(replay),
        replay_share=len(replay) / len(train),
        golden=len(golden),
    )
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        "params": params,
        "provenance": {**(extra or {}), "stage": "refresh"},
        "counts": {"splits": {"train": len(train), "dev": len(golden), "test": len(held)}, **sizes.to_dict()},
    }
    files = {"train.jsonl": split_jsonl(train), "dev.jsonl": split_jsonl(golden), "test.jsonl": split_jsonl(held)}
    version = write_version(store_root(project), digest, files, manifest)
    return ChallengerData(version, train, golden, held, sizes)


def golden_set(project: Project, champion_splits: DatasetVersion | None) -> tuple[list[Example], str]:
    """The pinned golden set and what identifies it: a split of the champion's version or a JSONL file.

    Cut to ``refresh.golden_size`` in a seeded order (a prefix of that order is a random sample).

    Raises:
        InputError: the split or file is missing, or empty.
    """
    from tunewise.examples import load_examples
    from tunewise.io.atomic import file_sha256

    spec = project.spec.refresh
    if spec.golden in ("train", "dev", "test"):
        if champion_splits is not None:
            examples, ref = champion_splits.read_split(spec.golden), f"{champion_splits.hash}:{spec.golden}"
        else:
            path = project.split_path(spec.golden)
            examples, ref = load_examples(project, path), f"{file_sha256(path)}:{spec.golden}"
    else:
        path = project.path(spec.golden)
        if not path.is_file():
            raise InputError("the golden set file does not exist", file=path, field="refresh.golden")
        examples, ref = load_examples(project, path), file_sha256(path)
    if not examples:
        raise InputError("the golden set is empty", field="refresh.golden")
    if spec.golden_size is not None:
        examples = spread_order(examples, project.spec.eval.seed)[: spec.golden_size]
    return examples, ref


def _distinct_ids(replay: list[Example], new: list[Example]) -> list[Example]:
    """Old rows renamed where a new row has the same id (ids must be unique within a split)."""
    taken = {e.id for e in new}
    return [Example(f"replay-{e.id}", e.messages, e.target, e.source, e.meta) if e.id in taken else e for e in replay]
