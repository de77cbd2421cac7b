"""Rows of a data file -> :class:`~tunewise.records.Example`, for the four accepted shapes.

- ``chat``: ``{"messages": [...]}``; the final assistant turn is the target, the turns before it the input.
- ``dialogue``: ``{"persona": [lines], "turns": [...]}`` (PersonaChat): turns alternate user/assistant, starting with
  the user and ending with the assistant; the persona (or ``task.persona_file``) joins the system prompt. Training
  learns every assistant turn; the persona lines stay in ``meta["persona"]`` for the consistency eval.
- ``prompt_completion``: ``{"prompt": str, "completion": str}``.
- ``fields``: any row whose input and target fields are named in the spec (the receipts have ``text`` and ``fields``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema

from tunewise.config import Project
from tunewise.errors import InputError
from tunewise.io.jsonl import read_jsonl
from tunewise.records import Example, Message

ROLES = {"system", "user", "assistant"}


def detect_format(row: dict[str, Any]) -> str:
    if "turns" in row:
        return "dialogue"
    if "messages" in row:
        return "chat"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    return "fields"


def load_examples(project: Project, path: str | Path, *, limit: int | None = None) -> list[Example]:
    """Read a data file into examples using the spec's data and task sections.

    Raises:
        InputError: naming the file, line and field of the first bad row.
    """
    path = Path(path)
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for line, row in read_jsonl(path):
        example = row_to_example(project, row, path, line)
        if example.id in seen:
            raise InputError(
                f"duplicate id {example.id!r} (first on line {seen[example.id]})",
                file=path,
                line=line,
                field=project.spec.data.id_field,
            )
        seen[example.id] = line
        examples.append(example)
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise InputError("no examples in file", file=path)
    return examples


def row_to_example(project: Project, row: dict[str, Any], path: Path, line: int) -> Example:
    data = project.spec.data
    fmt = data.format if data.format != "auto" else detect_format(row)
    source = f"{path}:{line}"
    raw_id = row.get(data.id_field)
    example_id = str(raw_id) if raw_id is not None else f"{path.stem}-{line}"
    persona = _persona(project, row, path, line, fmt)
    system = _system(project, persona)
    if fmt in {"chat", "dialogue"}:
        messages = _chat_messages(row, path, line) if fmt == "chat" else _dialogue_turns(row, path, line)
        if messages[-1]["role"] != "assistant":
            raise InputError(
                "the last message must be the assistant's answer (the target)", file=path, line=line, field="messages"
            )
        inputs, target_text = messages[:-1], messages[-1]["content"]
        if not any(m["role"] == "system" for m in inputs):
            inputs = system + inputs
    elif fmt == "prompt_completion":
        prompt, completion = row.get("prompt"), row.get("completion")
        for name, value in (("prompt", prompt), ("completion", completion)):
            if not isinstance(value, str):
                raise InputError(f"expected a string, got {type(value).__name__}", file=path, line=line, field=name)
        inputs, target_text = [*system, {"role": "user", "content": prompt}], completion
    else:
        inputs = [*system, {"role": "user", "content": _render_input(project, row, path, line)}]
        if data.target_field not in row:
            raise InputError("missing target", file=path, line=line, field=data.target_field)
        target_text = row[data.target_field]
    target = _coerce_target(project, target_text, path, line, data.target_field if fmt == "fields" else "completion")
    meta: dict[str, Any] = {}
    if data.group_field and data.group_field in row:
        meta["group"] = row[data.group_field]
    if persona:
        meta["persona"] = persona
    return Example(id=example_id, messages=inputs, target=target, source=source, meta=meta)


def row_to_input(project: Project, row: dict[str, Any], path: Path, line: int) -> tuple[Example, Any]:
    """An unlabelled row -> ``(example without target, gold target or None)``, for inputs a teacher will label.

    Accepts the data file shapes: a chat row (a final assistant turn, such as the served answer ``tunewise logs
    export`` writes, is not an input and is dropped), a ``prompt`` row, or a row with the spec's input field. A
    target found in the row (``data.target_field``, a ``completion``) is returned as gold, validated like any target.

    Raises:
        InputError: naming the file, line and field of the problem.
    """
    data = project.spec.data
    fmt = data.format if data.format != "auto" else detect_format(row)
    raw_id = row.get(data.id_field)
    example_id = str(raw_id) if raw_id is not None else f"{path.stem}-{line}"
    system = _system(project, _persona(project, row, path, line, fmt))
    gold, gold_field = None, data.target_field
    if fmt in {"chat", "dialogue"}:
        messages = _chat_messages(row, path, line) if fmt == "chat" else _dialogue_turns(row, path, line)
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        if not any(m["role"] == "user" for m in messages):
            raise InputError("no user message to label", file=path, line=line, field="messages")
        inputs = messages if any(m["role"] == "system" for m in messages) else system + messages
    elif "prompt" in row and fmt in {"prompt_completion", "fields"} and data.input_field not in row:
        if not isinstance(row["prompt"], str):
            raise InputError(
                f"expected a string, got {type(row['prompt']).__name__}", file=path, line=line, field="prompt"
            )
        inputs, gold, gold_field = (
            [*system, {"role": "user", "content": row["prompt"]}],
            row.get("completion"),
            "completion",
        )
    else:
        inputs, gold = (
            [*system, {"role": "user", "content": _render_input(project, row, path, line)}],
            row.get(gold_field),
        )
    if gold is not None:
        gold = _coerce_target(project, gold, path, line, gold_field)
    meta = {"group": row[data.group_field]} if data.group_field and data.group_field in row else {}
    return Example(id=example_id, messages=inputs, target=None, source=f"{path}:{line}", meta=meta), gold


def _chat_messages(row: dict[str, Any], path: Path, line: int) -> list[Message]:
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        raise InputError("expected a non-empty list of messages", file=path, line=line, field="messages")
    out: list[Message] = []
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InputError("expected an object with role and content", file=path, line=line, field=field)
        if message.get("role") not in ROLES:
            raise InputError(
                f"role must be one of {sorted(ROLES)}, got {message.get('role')!r}",
                file=path,
                line=line,
                field=f"{field}.role",
            )
        if not isinstance(message.get("content"), str):
            raise InputError("content must be a string", file=path, line=line, field=f"{field}.content")
        out.append({"role": message["role"], "content": message["content"]})
    return out


def persona_prompt(instructions: str, persona: list[str]) -> str:
    """The system prompt of a persona conversation: the task's instructions, then the persona's lines."""
    lines = "\n".join(f"- {line.strip()}" for line in persona)
    head = f"{instructions.strip()}\n\n" if instructions.strip() else ""
    return f"{head}Your persona:\n{lines}"


def _system(project: Project, persona: list[str] | None) -> list[Message]:
    instructions = project.spec.task.instructions
    if persona:
        return [{"role": "system", "content": persona_prompt(instructions, persona)}]
    return [{"role": "system", "content": instructions}] if instructions else []


def _persona(project: Project, row: dict[str, Any], path: Path, line: int, fmt: str) -> list[str] | None:
    """The row's persona lines, else the spec's ``task.persona_file``; a dialogue must have one."""
    if "persona" not in row:
        if fmt == "dialogue" and project.persona is None:
            raise InputError(
                "a dialogue needs a persona: a non-empty list of lines (or task.persona_file in the spec)",
                file=path,
                line=line,
                field="persona",
            )
        return project.persona
    persona = row["persona"]
    if not isinstance(persona, list) or not all(isinstance(p, str) for p in persona):
        raise InputError("persona must be a list of strings", file=path, line=line, field="persona")
    for index, text in enumerate(persona):
        if not text.strip():
            raise InputError("empty persona line", file=path, line=line, field=f"persona[{index}]")
    if not persona:
        raise InputError("empty persona: give at least one line", file=path, line=line, field="persona")
    return persona


def _dialogue_turns(row: dict[str, Any], path: Path, line: int) -> list[Message]:
    turns = row["turns"]
    if not isinstance(turns, list) or not turns:
        raise InputError("expected a non-empty list of turns", file=path, line=line, field="turns")
    out: list[Message] = []
    for index, turn in enumerate(turns):
        field = f"turns[{index}]"
        if not isinstance(turn, dict):
            raise InputError("expected an object with role and content", file=path, line=line, field=field)
        expected = "user" if index % 2 == 0 else "assistant"
        if turn.get("role") != expected:
            raise InputError(
                f"expected role {expected!r}, got {turn.get('role')!r}: a dialogue alternates user and assistant "
                "turns, starting with the user",
                file=path,
                line=line,
                field=f"{field}.role",
            )
        content = turn.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InputError("content must be a non-empty string", file=path, line=line, field=f"{field}.content")
        out.append({"role": expected, "content": content})
    if out[-1]["role"] != "assistant":
        raise InputError(
            "a dialogue ends with the assistant's turn (the last target)",
            file=path,
            line=line,
            field=f"turns[{len(out) - 1}]",
        )
    return out


def _render_input(project: Project, row: dict[str, Any], path: Path, line: int) -> str:
    data = project.spec.data
    template = project.spec.task.input_template
    if template is None:
        value = row.get(data.input_field)
        if not isinstance(value, str):
            problem = "missing input" if value is None else f"expected a string, got {type(value).__name__}"
            raise InputError(problem, file=path, line=line, field=data.input_field)
        return value
    try:
        return template.format(**row)
    except KeyError as exc:
        raise InputError(
            "field used by task.input_template is missing", file=path, line=line, field=str(exc.args[0])
        ) from None


def _coerce_target(project: Project, value: Any, path: Path, line: int, field: str) -> Any:
    kind = project.spec.task.kind
    if kind == "extract":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InputError(f"target is not JSON: {exc.msg}", file=path, line=line, field=field) from None
        if not isinstance(value, dict):
            raise InputError(
                f"target must be a JSON object, got {type(value).__name__}", file=path, line=line, field=field
            )
        return value
    if not isinstance(value, str):
        raise InputError(f"target must be a string, got {type(value).__name__}", file=path, line=line, field=field)
    if kind == "classify" and project.labels is not None and value not in project.labels:
        raise InputError(f"label {value!r} is not in the task's label set", file=path, line=line, field=field)
    return value


def validate_target(project: Project, example: Example, path: str | Path | None, line: int | None) -> list[InputError]:
    """Schema violations of an extraction target, one entry per violation (field = target path)."""
    if project.output_schema is None or project.spec.task.kind != "extract":
        return []
    validator = jsonschema.Draft202012Validator(project.output_schema)
    base = project.spec.data.target_field
    out = []
    for error in sorted(validator.iter_errors(example.target), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path)
        out.append(
            InputError(
                f"schema violation: {error.message}", file=path, line=line, field=f"{base}.{where}" if where else base
            )
        )
    return out


def check_targets(project: Project, examples: list[Example]) -> None:
    """Refuse gold targets that break the output schema, with the message ``data check`` gives.

    Raises:
        InputError: the first violation, naming the file, line and target field.
    """
    for example in examples:
        file, _, line = example.source.rpartition(":")
        if not line.isdigit():  # not ``file:line`` (an in-memory example)
            file, line = example.source, ""
        problems = validate_target(project, example, file or None, int(line) if line else None)
        if problems:
            raise problems[0]


def target_text(example: Example) -> str:
    """The assistant's answer as text: JSON for structured targets (compact, keys in target order)."""
    if isinstance(example.target, str):
        return example.target
    return json.dumps(example.target, ensure_ascii=False)


def spread_order(examples: list[Example], seed: int = 0) -> list[Example]:
    """The examples in a fixed pseudo-random order, by a hash of ``seed`` and each id.

    Prefixes of this order are random samples even when the file is sorted (by label, by source document), so a
    probe or an in-training evaluation on the first N is not N examples of one class; and adding rows to the file
    does not reorder the examples already there.
    """

    def key(example: Example) -> str:
        return hashlib.sha256(f"{seed}:{example.id}".encode()).hexdigest()

    return sorted(examples, key=key)
