"""Reports built from records only: Markdown + one self-contained HTML page, from the Jinja2 templates shipped here."""

from tunewise.report.page import render_page, write_report
from tunewise.report.render import render_report

__all__ = ["render_page", "render_report", "write_report"]
