"""The dataset card as Markdown (``card.md``), for a person reading what curation found."""

from __future__ import annotations

import json
from typing import Any

from tunewise.data.card import DatasetCard

MAX_LISTED = 20


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return lines


def _listed(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["None found."]
    lines = _table(header, rows[:MAX_LISTED])
    if len(rows) > MAX_LISTED:
        lines.append(f"\n... and {len(rows) - MAX_LISTED} more (all in card.json).")
    return lines


def render_card(card: DatasetCard) -> str:
    """Markdown for a card produced by :func:`tunewise.data.build.prepare`."""
    out = [
        f"# Dataset {card.hash[:12]}",
        "",
        f"- hash: `{card.hash}`",
        f"- task: {card.task_kind}",
        f"- created: {card.created_at}",
        "",
    ]
    sources = [[s.split, s.path, s.sha256[:16], s.rows] for s in card.sources]
    out += ["## Sources", "", *_table(["split", "file", "sha256", "rows"], sources)]
    out += _provenance(card)
    steps = [[step, rows] for step, rows in card.counts.to_dict().items() if step != "splits"]
    out += ["", "## Counts", "", *_table(["step", "rows"], steps)]
    out += ["", "## Splits", "", *_table(["split", "rows"], [[k, v] for k, v in card.counts.splits.items()])]
    out += _splitting(card) + _duplicates(card) + _leakage(card) + _pii(card) + _grounding(card) + _agreement(card)
    out += ["", "## Distribution", ""]
    for split, dist in card.distribution.items():
        top = sorted(dist.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
        out += [f"- {split}: " + ", ".join(f"{k} {v}" for k, v in top)]
    lengths = [[split, s.mean, s.p95, s.max] for split, s in card.input_chars.items()]
    out += ["", "## Input length (characters)", "", *_table(["split", "mean", "p95", "max"], lengths)]
    out += ["", "## Limitations", "", *(f"- {item}" for item in card.limitations)]
    return "\n".join(out) + "\n"


def _provenance(card: DatasetCard) -> list[str]:
    """Targets a stage wrote (``distill``): who labelled, with what prompt, at what cost, and what was filtered."""
    if not card.provenance:
        return []
    rows = [
        [key, json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value]
        for key, value in card.provenance.items()
    ]
    return ["", "## Provenance of the targets", "", *_table(["key", "value"], rows)]


def _splitting(card: DatasetCard) -> list[str]:
    splitting = card.splitting
    out = [
        "",
        f"Mode: {splitting.mode}; seed {splitting.seed}; group key: {splitting.group_key or 'none'}; "
        f"stratified by label: {splitting.stratified}.",
    ]
    if splitting.group_key:
        straddle = splitting.groups_across_splits
        out += ["", f"Groups present in more than one split: {len(straddle)}."]
        out += (
            _table(["group", "splits"], [[g, ", ".join(s)] for g, s in list(straddle.items())[:MAX_LISTED]])
            if straddle
            else []
        )
    return out


def _duplicates(card: DatasetCard) -> list[str]:
    dups, params = card.duplicates, card.params
    kept = (
        "near-duplicates with the same target as their twin" if params["drop_near_duplicates"] else "no near-duplicates"
    )
    out = [
        "",
        "## Duplicates",
        "",
        f"Exact: {sum(d.kind == 'exact' for d in dups)}; near (Jaccard >= "
        f"{params['near_dup_threshold']}, {params['shingle_size']}-word shingles): "
        f"{sum(d.kind == 'near' for d in dups)}; dropped: {card.counts.duplicates_dropped} (exact duplicates, and "
        f"{kept}; the first of each group is kept).",
        "",
    ]
    conflicts = sum(1 for d in dups if not d.same_target)
    if conflicts:
        out += [
            f"{conflicts} of them carry a different target from their twin: label noise, or a distinct row that "
            "only looks alike (near-duplicates with a different target are kept). Review them.",
            "",
        ]
    rows = [[d.id, d.twin, d.similarity, d.kind, d.same_target] for d in dups]
    return out + _listed(["row", "twin (kept)", "similarity", "kind", "same target"], rows)


def _leakage(card: DatasetCard) -> list[str]:
    leakage = card.leakage
    out = [
        "",
        "## Leakage between splits",
        "",
        f"dev/test rows with a near twin in train (Jaccard >= {leakage.threshold}): "
        f"{len(leakage.leaks)}; action: {leakage.action}.",
        "",
    ]
    rows = [[leak.id, leak.split, leak.twin, leak.similarity] for leak in leakage.leaks]
    return out + _listed(["row", "split", "train twin", "similarity"], rows)


def _pii(card: DatasetCard) -> list[str]:
    pii = card.pii
    out = [
        "",
        "## PII",
        "",
        f"Mode: {pii.mode}; rows with PII: {pii.rows_with_pii}; dropped rows: {len(pii.dropped)}.",
        "",
    ]
    out += _table(["type", "found"], [[k, v] for k, v in pii.counts.items()]) if pii.counts else ["None found."]
    return [*out, "", f"Person names: {pii.person_names}."]


def _grounding(card: DatasetCard) -> list[str]:
    if card.grounding is None:
        return []
    out = ["", "## Grounding (target values absent from the input)", ""]
    rows = [[name, f.checked, f.ungrounded, f.ungrounded_rate, f.empty] for name, f in card.grounding.per_field.items()]
    out += _table(["field", "checked", "ungrounded", "rate", "empty"], rows)
    for name, shown in card.grounding.examples.items():
        out += ["", f"{name}: " + "; ".join(f"{e.id} `{e.value}`" for e in shown)]
    return out


def _agreement(card: DatasetCard) -> list[str]:
    agreement = card.agreement
    if agreement is None:
        return []
    out = [
        "",
        "## Annotator agreement",
        "",
        f"Annotators: {', '.join(agreement.annotators)}; disagreements queued: "
        f"{agreement.disagreements} (disagreements.jsonl).",
        "",
    ]
    pair = len(agreement.annotators) == 2  # Cohen's kappa is defined for two annotators only
    rows = [
        [name, f.items, f.krippendorff_alpha, f.cohen_kappa if pair else "-"] for name, f in agreement.per_field.items()
    ]
    return out + _table(["field", "items", "Krippendorff alpha", "Cohen kappa"], rows)
