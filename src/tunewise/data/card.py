"""The dataset card: a JSON record of what curation found, and its Markdown rendering."""

from __future__ import annotations

from typing import Any

MAX_LISTED = 20


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return lines


def _listed(items: list[dict[str, Any]], header: list[str], keys: list[str]) -> list[str]:
    if not items:
        return ["None found."]
    lines = _table(header, [[item.get(k, "") for k in keys] for item in items[:MAX_LISTED]])
    if len(items) > MAX_LISTED:
        lines.append(f"\n... and {len(items) - MAX_LISTED} more (all in card.json).")
    return lines


def render_card(card: dict[str, Any]) -> str:
    """Markdown for a card produced by :func:`tunewise.data.build.prepare`."""
    counts = card["counts"]
    out = [f"# Dataset {card['hash'][:12]}", "", f"- hash: `{card['hash']}`", f"- task: {card['task_kind']}", f"- created: {card['created_at']}", ""]
    out += ["## Sources", ""] + _table(["split", "file", "sha256", "rows"], [[s["split"], s["path"], s["sha256"][:16], s["rows"]] for s in card["sources"]])
    out += ["", "## Counts", ""] + _table(["step", "rows"], [[k, v] for k, v in counts.items() if not isinstance(v, dict)])
    out += ["", "## Splits", ""] + _table(["split", "rows"], [[k, v] for k, v in counts["splits"].items()])
    splitting = card["splitting"]
    out += ["", f"Mode: {splitting['mode']}; seed {splitting['seed']}; group key: {splitting['group_key'] or 'none'}; "
            f"stratified by label: {splitting['stratified']}."]
    if splitting["group_key"]:
        straddle = splitting["groups_across_splits"]
        out += ["", f"Groups present in more than one split: {len(straddle)}."]
        out += _table(["group", "splits"], [[g, ", ".join(s)] for g, s in list(straddle.items())[:MAX_LISTED]]) if straddle else []
    dups = card["duplicates"]
    out += ["", "## Duplicates", "", f"Exact: {sum(d['kind'] == 'exact' for d in dups)}; near (Jaccard >= "
            f"{card['params']['near_dup_threshold']}, {card['params']['shingle_size']}-word shingles): "
            f"{sum(d['kind'] == 'near' for d in dups)}; dropped: {card['counts']['duplicates_dropped']} (exact duplicates, and "
            f"{'near-duplicates with the same target as their twin' if card['params']['drop_near_duplicates'] else 'no near-duplicates'}; "
            "the first of each group is kept).", ""]
    conflicts = sum(1 for d in dups if not d.get("same_target", True))
    if conflicts:
        out += [f"{conflicts} of them carry a different target from their twin: label noise, or a distinct row that "
                "only looks alike (near-duplicates with a different target are kept). Review them.", ""]
    out += _listed(dups, ["row", "twin (kept)", "similarity", "kind", "same target"], ["id", "twin", "similarity", "kind", "same_target"])
    leakage = card["leakage"]
    out += ["", "## Leakage between splits", "", f"dev/test rows with a near twin in train (Jaccard >= {leakage['threshold']}): "
            f"{len(leakage['leaks'])}; action: {leakage['action']}.", ""]
    out += _listed(leakage["leaks"], ["row", "split", "train twin", "similarity"], ["id", "split", "twin", "similarity"])
    pii = card["pii"]
    out += ["", "## PII", "", f"Mode: {pii['mode']}; rows with PII: {pii['rows_with_pii']}; dropped rows: {len(pii['dropped'])}.", ""]
    out += _table(["type", "found"], [[k, v] for k, v in pii["counts"].items()]) if pii["counts"] else ["None found."]
    out += ["", f"Person names: {pii['person_names']}."]
    if card.get("grounding"):
        out += ["", "## Grounding (target values absent from the input)", ""]
        per_field = card["grounding"]["per_field"]
        out += _table(["field", "checked", "ungrounded", "rate", "empty"], [[f, v["checked"], v["ungrounded"], v["ungrounded_rate"], v["empty"]] for f, v in per_field.items()])
        for name, shown in card["grounding"]["examples"].items():
            out += ["", f"{name}: " + "; ".join(f"{e['id']} `{e['value']}`" for e in shown)]
    if card.get("agreement"):
        agreement = card["agreement"]
        out += ["", "## Annotator agreement", "", f"Annotators: {', '.join(agreement['annotators'])}; disagreements queued: {agreement['disagreements']} (disagreements.jsonl).", ""]
        out += _table(["field", "items", "Krippendorff alpha", "Cohen kappa"], [[f, v["items"], v["krippendorff_alpha"], v.get("cohen_kappa", "-")] for f, v in agreement["per_field"].items()])
    out += ["", "## Distribution", ""]
    for split, dist in card["distribution"].items():
        top = sorted(dist.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
        out += [f"- {split}: " + ", ".join(f"{k} {v}" for k, v in top)]
    out += ["", "## Input length (characters)", ""] + _table(["split", "mean", "p95", "max"], [[s, v["mean"], v["p95"], v["max"]] for s, v in card["input_chars"].items()])
    out += ["", "## Limitations", ""] + [f"- {item}" for item in card["limitations"]]
    return "\n".join(out) + "\n"
