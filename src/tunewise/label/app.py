"""The labelling page: a small Starlette app on loopback serving one queue to domain experts.

- ``GET /?labeller=NAME``: the page (HTML, inline CSS and JS; nothing fetched from elsewhere).
- ``GET /api/items?labeller=NAME``: that labeller's items (input, pre-fill, reasons, their answer so far) and
  progress.
- ``POST /api/labels``: ``{"item", "labeller", "action": accept|correct|skip, "target"}``; the target is checked
  (400 with ``{"error", "field"}`` naming what is wrong) and appended durably before the answer is acknowledged.

Who sees what: the first ``label.overlap`` items go to every labeller (for agreement); any other item goes to every
labeller until one of them accepts or corrects it, and stays with those who answered it.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tunewise.config import Project
from tunewise.errors import InputError
from tunewise.label.queue import read_queue
from tunewise.label.record import ACTIONS, LabelEntry, LabelQueue, QueueItem
from tunewise.label.store import append_label, labels_path, latest_answers, read_labels
from tunewise.label.targets import check_target, schema_fields
from tunewise.monitor.traffic import input_text
from tunewise.serve.state import is_loopback

_LABELLER = re.compile(r"^[\w][\w .@-]{0,63}$")
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)


def create_label_app(project: Project, queue: LabelQueue) -> Starlette:
    """The ASGI app serving ``queue`` (its labels go to the queue's ``labels.jsonl``)."""
    items = {item.id: item for item in queue.items}
    path = labels_path(queue)

    async def page(request: Request) -> Response:
        config = {
            "queue": queue.id,
            "kind": project.spec.task.kind,
            "fields": schema_fields(project),
            "labels": project.labels or [],
            "labeller": request.query_params.get("labeller", ""),
            "project": project.spec.name,
        }
        html = _TEMPLATES.get_template("page.html").render(
            title=project.spec.name, config_json=page_config_json(config)
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def list_items(request: Request) -> Response:
        try:
            labeller = _labeller(request.query_params.get("labeller"))
        except InputError as error:
            return _error(error)
        answers = latest_answers(read_labels(path))
        shown = visible_items(queue.items, answers, labeller)
        rows = [_item_json(item, answers.get((item.id, labeller))) for item in shown]
        done = sum(row["answer"] is not None for row in rows)
        return JSONResponse({"queue": queue.id, "labeller": labeller, "total": len(rows), "done": done, "items": rows})

    async def post_label(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(InputError("the body must be a JSON object", field="body"))
        try:
            entry = _entry(project, items, body)
        except InputError as error:
            return _error(error)
        await asyncio.to_thread(append_label, path, entry)
        return JSONResponse({"ok": True, "item": entry.item, "action": entry.action, "target": entry.target})

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/api/items", list_items, methods=["GET"]),
        Route("/api/labels", post_label, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def visible_items(items: list[QueueItem], answers: dict[tuple[str, str], LabelEntry], labeller: str) -> list[QueueItem]:
    """The items one labeller is shown, in queue order (see the module docstring)."""
    claimed = {item for (item, who), entry in answers.items() if who != labeller and entry.action != "skip"}
    return [i for i in items if i.overlap or (i.id, labeller) in answers or i.id not in claimed]


def _labeller(name: str | None) -> str:
    name = (name or "").strip()
    if not _LABELLER.match(name):
        raise InputError("give your name: letters, digits, spaces, . @ - (up to 64)", field="labeller")
    return name


def _entry(project: Project, items: dict[str, QueueItem], body: Any) -> LabelEntry:
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object", field="body")
    labeller = _labeller(body.get("labeller"))
    item = body.get("item")
    if item not in items:
        raise InputError(f"no item {item!r} in this queue", field="item")
    action = body.get("action")
    if action not in ACTIONS:
        raise InputError(f"expected one of {', '.join(ACTIONS)}, got {action!r}", field="action")
    target = None if action == "skip" else check_target(project, body.get("target"))
    return LabelEntry(item=item, labeller=labeller, action=action, target=target, time=time.time())


def _item_json(item: QueueItem, answer: LabelEntry | None) -> dict[str, Any]:
    system = "\n\n".join(m["content"] for m in item.example.messages if m["role"] == "system")
    return {
        "id": item.id,
        "text": input_text(item.example),
        "system": system,
        "output": item.output,
        "prefill": item.prefill,
        "reasons": item.reasons,
        "overlap": item.overlap,
        "answer": None if answer is None else {"action": answer.action, "target": answer.target},
    }


def _error(error: InputError) -> JSONResponse:
    return JSONResponse({"error": error.problem, "field": error.field, "message": str(error)}, status_code=400)


@dataclass
class RunningLabelServer:
    """A page started by :func:`start_label_server`: its URL and how to stop it."""

    url: str
    queue: LabelQueue
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> RunningLabelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind(project: Project, host: str | None, port: int | None) -> socket.socket:
    host = host or project.spec.label.host
    port = project.spec.label.port if port is None else port
    if not is_loopback(host):
        raise InputError(
            f"the labelling page has no login: bind a loopback address, not {host} (reach it through an SSH tunnel)",
            field="label.host",
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {error.strerror}", field="label.port") from None
    sock.listen(128)
    return sock


def _server(project: Project, queue: LabelQueue) -> uvicorn.Server:
    config = uvicorn.Config(create_label_app(project, queue), log_config=None, access_log=False, lifespan="off")
    return uvicorn.Server(config)


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def start_label_server(
    project: Project,
    queue: str | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    timeout_s: float = 30.0,
) -> RunningLabelServer:
    """Serve the page on a background thread (``port=0``: a free port) and return once it listens.

    Raises:
        InputError: no such queue, a non-loopback host, or the port is taken.
        TimeoutError: the server did not start in time.
    """
    loaded = read_queue(project, queue)
    sock = _bind(project, host, port)
    server = _server(project, loaded)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as error:  # reported to the caller below
            errors.append(error)

    thread = threading.Thread(target=run, name="tunewise-label", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if errors or not thread.is_alive():
            raise errors[0] if errors else RuntimeError("the labelling page stopped while starting")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the labelling page did not start within {timeout_s:g} s")
        time.sleep(0.02)
    return RunningLabelServer(_url(sock), loaded, server, thread)


def serve_labels(
    project: Project,
    queue: str | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    announce: Callable[[str, LabelQueue], None] | None = None,
) -> None:
    """Serve the page until interrupted (Ctrl+C); ``announce(url, queue)`` once it is bound.

    Raises:
        InputError: no such queue, a non-loopback host, or the port is taken.
    """
    loaded = read_queue(project, queue)
    sock = _bind(project, host, port)
    if announce is not None:
        announce(_url(sock), loaded)
    _server(project, loaded).run(sockets=[sock])


def page_config_json(config: dict[str, Any]) -> str:
    """The page's settings as JSON safe inside a ``<script>`` element."""
    return json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")
