"""Field normalisers: how a predicted field value is compared with the gold one.

Each normaliser maps ``(predicted, gold)`` to "equal or not". Values may be any JSON type (a model can write ``9``
where the gold is ``"9.00"``); they are turned into text first, then normalised:

- ``text`` (default): Unicode NFKC, case-fold, whitespace collapsed and stripped.
- ``exact``: the text as written (non-strings as their JSON text).
- ``number`` / ``money``: currency symbols and codes (RM, MYR, $, USD, ...), spaces and thousands separators removed,
  compared as :class:`~decimal.Decimal` (``"RM 1,234.5" == "1234.50"``).
- ``date``: the first printed date found is parsed to ISO ``YYYY-MM-DD`` (day-first unless the year leads).
- ``fuzzy``: token F1 over punctuation-insensitive tokens at or above the context's threshold (addresses).

A value a numeric or date normaliser cannot parse falls back to the ``text`` comparison, so a model is never
rewarded for an unparseable answer, and two identical unparseable strings still count as equal.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

NORMALIZERS = ("text", "exact", "number", "money", "date", "fuzzy")

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def as_text(value: Any) -> str:
    """The text of a JSON value: strings as-is, ``None`` as ``""``, anything else as its JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def is_empty(value: Any) -> bool:
    """A missing field: ``None``, an empty or whitespace-only string, an empty list or object."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, dict)):
        return not value
    return False


def normalize_text(value: Any) -> str:
    """NFKC, case-fold, collapse whitespace: ``"CAFE\\u0301 "`` -> ``"café"``."""
    text = unicodedata.normalize("NFKC", as_text(value)).casefold()
    # Case-folding can produce decomposable sequences again; NFKC once more keeps "Café" == "CAFÉ".
    text = unicodedata.normalize("NFKC", text)
    return _WS.sub(" ", text).strip()


def tokens(value: Any) -> list[str]:
    """Punctuation-insensitive word tokens of the normalised text."""
    return _WORD.findall(normalize_text(value).replace("_", " "))


def token_f1(predicted: Any, gold: Any) -> float:
    """Bag-of-tokens F1 between two values (1.0 when both have no tokens)."""
    pred, ref = tokens(predicted), tokens(gold)
    if not pred and not ref:
        return 1.0
    if not pred or not ref:
        return 0.0
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


# --- numbers -------------------------------------------------------------------------------------------------

_CURRENCY = re.compile(
    r"(?i)(?<![a-z])(?:rm|myr|usd|sgd|eur|gbp|idr|rp|inr|rs|aud|cad|jpy|cny|rmb)(?![a-z])\.?|[$€£¥₹₩฿]"
)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d+)*(?:[.,]\d*)?|[.,]\d+)$")


def parse_number(value: Any) -> Decimal | None:
    """A numeric value as ``Decimal``, or ``None`` when it is not a number.

    Handles currency symbols and codes, spaces, a leading or trailing minus, parentheses for negatives, ``,`` as
    thousands separator (``1,234.50``) and as decimal separator when it is the only separator followed by one or
    two digits (``12,50``), and ``.`` thousands with ``,`` decimals (``1.234,50``).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    text = unicodedata.normalize("NFKC", as_text(value)).strip()
    negative = False
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    text = _CURRENCY.sub("", text)
    text = re.sub(r"\s+", "", text)
    if text.startswith("-"):
        negative, text = not negative, text[1:]
    elif text.endswith("-"):
        negative, text = not negative, text[:-1]
    text = _CURRENCY.sub("", text).lstrip("+")
    if not text or not _NUMBER.match(text):
        return None
    text = _standard_decimal(text)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return -number if negative else number


def _standard_decimal(text: str) -> str:
    """Digits with ``.`` as the only (decimal) separator."""
    if "," in text and "." in text:
        decimal_sep = "," if text.rfind(",") > text.rfind(".") else "."
        thousands = "." if decimal_sep == "," else ","
        return text.replace(thousands, "").replace(decimal_sep, ".")
    if "," in text:
        parts = text.split(",")
        if all(len(p) == 3 for p in parts[1:]) and (len(parts) > 2 or parts[0] not in ("", "0")):
            return text.replace(",", "")
        # A single comma before 1-2 digits is a decimal comma ("12,50"); anything else stays invalid.
        return text.replace(",", ".") if len(parts) == 2 else text
    parts = text.split(".")
    # One dot is a decimal point even before three digits ("1.500"); several dots must be thousands groups.
    if len(parts) > 2 and all(len(p) == 3 for p in parts[1:]):
        return text.replace(".", "")
    return text


# --- dates ---------------------------------------------------------------------------------------------------

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS |= {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS["sept"] = 9
_MON = r"(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_SEP = r"[\s./-]*"
_DATE_PATTERNS = [
    re.compile(r"(?<!\d)(?P<y>\d{4})[./-](?P<m>\d{1,2})[./-](?P<d>\d{1,2})(?!\d)"),
    re.compile(r"(?<!\d)(?P<a>\d{1,2})[./-](?P<b>\d{1,2})[./-](?P<y>\d{4}|\d{2})(?!\d)"),
    re.compile(r"(?<![\d\w])(?P<d>\d{1,2})(?:st|nd|rd|th)?" + _SEP + _MON + _SEP + r"(?P<y>\d{4}|\d{2})(?!\d)", re.I),
    re.compile(r"(?<![\w])" + _MON + r"\s*(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s*(?P<y>\d{4})(?!\d)", re.I),
    re.compile(r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<m>[01]\d)(?P<d>[0-3]\d)(?!\d)"),
    re.compile(r"(?<!\d)(?P<d>[0-3]\d)(?P<m>[01]\d)(?P<y>(?:19|20)\d{2})(?!\d)"),
]


def parse_date(value: Any, *, day_first: bool = True) -> str | None:
    """The first date printed in ``value`` as ISO ``YYYY-MM-DD``, or ``None``.

    Accepts ``25/12/2018``, ``25-12-18``, ``2018-12-25``, ``02 MAR 2018``, ``02-MAR-2018``, ``Oct 9, 2018``,
    ``20180304``, ``25032018``, ``12.01.2019``, optionally with surrounding text or a time. Numeric dates are
    day-first by default; when that reading is impossible (``12/25/2018``) the month-first reading is used. Two-digit
    years are 20YY below 70, 19YY otherwise.
    """
    text = unicodedata.normalize("NFKC", as_text(value))
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            iso = _date_from_match(match.groupdict(), day_first)
            if iso is not None:
                return iso
    return None


def _date_from_match(groups: dict[str, str | None], day_first: bool) -> str | None:
    year = int(groups["y"] or 0)
    if len(groups["y"] or "") == 2:
        year += 2000 if year < 70 else 1900
    if groups.get("mon"):
        orders = [(int(groups["d"] or 0), _MONTHS[groups["mon"].lower().rstrip(".")])]
    elif groups.get("a"):
        a, b = int(groups["a"] or 0), int(groups["b"] or 0)
        orders = [(a, b), (b, a)] if day_first else [(b, a), (a, b)]
    else:
        orders = [(int(groups["d"] or 0), int(groups["m"] or 0))]
    for day, month in orders:
        try:
            return dt.date(year, month, day).isoformat()
        except ValueError:
            continue
    return None


# --- comparison ----------------------------------------------------------------------------------------------


def values_equal(predicted: Any, gold: Any, normalizer: str = "text", *, fuzzy_threshold: float = 0.8) -> bool:
    """Whether a predicted field value matches the gold one under a normaliser.

    Emptiness is decided before this (see :func:`is_empty`); here both values are compared as written.

    Raises:
        ValueError: unknown normaliser name.
    """
    if normalizer not in _COMPARE:
        raise ValueError(f"unknown normaliser {normalizer!r} (expected one of: {', '.join(NORMALIZERS)})")
    return _COMPARE[normalizer](predicted, gold, fuzzy_threshold)


def _text_equal(predicted: Any, gold: Any, _: float) -> bool:
    return normalize_text(predicted) == normalize_text(gold)


def _exact_equal(predicted: Any, gold: Any, _: float) -> bool:
    return as_text(predicted) == as_text(gold)


def _number_equal(predicted: Any, gold: Any, threshold: float) -> bool:
    a, b = parse_number(predicted), parse_number(gold)
    if a is None or b is None:
        return _text_equal(predicted, gold, threshold)
    return a == b


def _date_equal(predicted: Any, gold: Any, threshold: float) -> bool:
    a, b = parse_date(predicted), parse_date(gold)
    if a is None or b is None:
        return _text_equal(predicted, gold, threshold)
    return a == b


def _fuzzy_equal(predicted: Any, gold: Any, threshold: float) -> bool:
    return _text_equal(predicted, gold, threshold) or token_f1(predicted, gold) >= threshold


_COMPARE: dict[str, Callable[[Any, Any, float], bool]] = {
    "text": _text_equal,
    "exact": _exact_equal,
    "number": _number_equal,
    "money": _number_equal,
    "date": _date_equal,
    "fuzzy": _fuzzy_equal,
}
