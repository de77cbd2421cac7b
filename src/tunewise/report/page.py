"""The one report renderer: every stage's Markdown and HTML come from the Jinja2 templates in ``report/templates``.

Pages (``<report>.html``) extend ``base.html``: one self-contained file, inline style, images as ``data:`` URIs.
HTML and SVG templates are autoescaped; Markdown templates (``*.md.j2``) are not, since Markdown has no escaping.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from tunewise import egress
from tunewise.io.atomic import atomic_write_text


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells, as the ``table`` macros of ``macros.html`` / ``macros.md.j2`` draw it."""

    header: list[str]
    rows: list[list[str]]


def money(value: float | None) -> str:
    """US dollars: whole dollars from $100 up, cents below, ``unknown`` for ``None``."""
    if value is None:
        return "unknown"
    return f"${value:,.0f}" if abs(value) >= 100 else f"${value:,.2f}"


@functools.cache
def environment() -> jinja2.Environment:
    """The shared template environment (built on first use: the loader imports the ``tunewise`` package)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tunewise", "report/templates"),
        autoescape=jinja2.select_autoescape(["html", "svg"]),
        # Block tags on their own line leave no line behind, and a file's last newline is kept: Markdown templates
        # then read like the Markdown they produce.
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = format  # {{ x|fmt(".3f") }}: Python's format spec, so numbers print as everywhere else
    env.filters["money"] = money
    env.filters["b64"] = lambda data: base64.b64encode(data).decode()
    env.filters["filename"] = lambda path: Path(path).name
    env.globals["zip"] = zip
    return env


def render_page(template_name: str, **context: Any) -> str:
    """Render one template of ``report/templates`` with ``context``.

    Args:
        template_name: e.g. ``"eval.html"`` (autoescaped) or ``"eval.md.j2"`` (raw Markdown).
        **context: the template's variables; records are read with attribute syntax. ``egress_guard`` (whether the
            zero-egress guard was on) defaults to the guard's state now, i.e. during the stage that renders.

    Returns:
        The rendered text.
    """
    context.setdefault("egress_guard", egress.is_on())
    return environment().get_template(template_name).render(**context)


def write_report(directory: str | Path, markdown: str, html: str, *, stem: str = "report") -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.html`` into ``directory``, each atomically; return both paths."""
    directory = Path(directory)
    md_path, html_path = directory / f"{stem}.md", directory / f"{stem}.html"
    atomic_write_text(md_path, markdown)
    atomic_write_text(html_path, html)
    return md_path, html_path
