"""Refusal detection: an answer that declines the task rather than doing it (teacher filtering, output drift)."""

from __future__ import annotations

import re

# Openings of an answer that declines the task rather than doing it (checked on the first 200 characters).
REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry, (but )?i|i can(?:no|')t|i cannot|i'?m (not able|unable)|i am (not able|unable)"
    r"|as an ai\b|i won'?t be able|unfortunately,? i (can(?:no|')t|am unable))",
    re.I,
)


def is_refusal(text: str) -> bool:
    """Whether ``text`` opens by declining the task (``"I'm sorry, I can't…"``, ``"As an AI…"``)."""
    return REFUSAL.match(text.strip()[:200]) is not None
