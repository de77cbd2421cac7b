"""Reports built from records only: Markdown + one self-contained HTML page with plots."""

from tunewise.report.render import render_report

__all__ = ["render_report"]
