"""PII recognizers (a registry: a dict filled by a decorator) and redaction that keeps input and target aligned.

Every recognizer is a function ``text -> list[Span]``; checksums (Luhn, IBAN mod-97) and value checks (IP ranges,
dates inside national IDs) keep look-alike numbers such as barcodes, totals and dates from being flagged.
Person names are not detected: no named-entity model ships with tunewise (the card says so).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

Recognizer = Callable[[str], list["Span"]]
RECOGNIZERS: dict[str, Recognizer] = {}
# Higher wins when spans overlap: a Malaysian NRIC is also shaped like a phone number.
PRIORITY: dict[str, int] = {}


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` is PII of type ``kind``."""

    start: int
    end: int
    kind: str
    value: str


def register_recognizer(kind: str, *, priority: int = 0) -> Callable[[Recognizer], Recognizer]:
    """Decorator: add a recognizer to the registry under ``kind`` (replacing one of the same name)."""

    def wrap(func: Recognizer) -> Recognizer:
        RECOGNIZERS[kind] = func
        PRIORITY[kind] = priority
        return func

    return wrap


def _spans(pattern: re.Pattern[str], text: str, kind: str, valid: Callable[[str], bool] = lambda _: True) -> list[Span]:
    return [Span(m.start(), m.end(), kind, m.group()) for m in pattern.finditer(text) if valid(m.group())]


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")


@register_recognizer("email", priority=50)
def find_emails(text: str) -> list[Span]:
    return _spans(_EMAIL, text, "email")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
# Issuer prefixes and lengths (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay): a barcode or a
# document number that happens to pass Luhn rarely also matches an issuer. 13-digit Visa numbers are left out:
# they are retired, and EAN-13 barcodes starting with 4 on receipts pass Luhn as often as not.
_ISSUERS = re.compile(
    r"^(?:4\d{15}(?:\d{3})?|5[1-5]\d{14}|2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}|3[47]\d{13}"
    r"|6(?:011|5\d\d)\d{12,15}|35(?:2[89]|[3-8]\d)\d{12,15}|3(?:0[0-5]|[68]\d)\d{11}(?:\d\d)?|62\d{14,17})$"
)


def _card_ok(value: str) -> bool:
    digits = re.sub(r"[ -]", "", value)
    return bool(_ISSUERS.match(digits)) and luhn_ok(digits)


@register_recognizer("credit_card", priority=40)
def find_cards(text: str) -> list[Span]:
    return _spans(_CARD, text, "credit_card", _card_ok)


_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")


_IBAN_COUNTRY_LENGTHS = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DK18 DO28 EE20 EG29 ES24 "
    "FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 "
    "LI21 LT20 LU20 LV21 MC27 MD24 ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 RO24 RS22 SA24 "
    "SC31 SE24 SI19 SK24 SM27 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20"
)
_IBAN_LENGTHS = {code[:2]: int(code[2:]) for code in _IBAN_COUNTRY_LENGTHS.split()}


def iban_ok(value: str) -> bool:
    """ISO 13616 check: a known country with its IBAN length, and mod-97 of the rearranged number is 1."""
    compact = value.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


@register_recognizer("iban", priority=45)
def find_ibans(text: str) -> list[Span]:
    return _spans(_IBAN, text, "iban", iban_ok)


_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def _ip_ok(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@register_recognizer("ip_address", priority=30)
def find_ips(text: str) -> list[Span]:
    ipv6 = [s for s in _spans(_IPV6, text, "ip_address", _ip_ok) if s.value.count(":") >= 2 and len(s.value) > 2]
    return _spans(_IPV4, text, "ip_address", _ip_ok) + ipv6


_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")


@register_recognizer("us_ssn", priority=35)
def find_us_ssns(text: str) -> list[Span]:
    return _spans(_SSN, text, "us_ssn")


_NRIC = re.compile(r"(?<![\d-])(\d{2})(\d{2})(\d{2})-(\d{2})-(\d{4})(?![\d-])")


def _nric_ok(value: str) -> bool:
    match = _NRIC.fullmatch(value)
    if match is None:
        return False
    month, day, place = int(match.group(2)), int(match.group(3)), int(match.group(4))
    # Place-of-birth codes 00, 17-20, 69, 70, 73, 80, 81, 94-97 are unassigned.
    return 1 <= month <= 12 and 1 <= day <= 31 and place not in {0, 17, 18, 19, 20, 69, 70, 73, 80, 81, 94, 95, 96, 97}


@register_recognizer("my_nric", priority=36)
def find_my_nrics(text: str) -> list[Span]:
    return _spans(_NRIC, text, "my_nric", _nric_ok)


# A phone number: optional +country code, then 2-5 groups of digits joined by one separator each; 9-15 digits in
# all. A separator or a leading "+" is required so that barcodes and long document numbers are not phones.
_PHONE = re.compile(
    r"(?<![\w+/.:-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,5}){1,4}(?![\w/:-]|\.\d)"
)


_DATE_START = re.compile(r"(?:\d{1,2}[-.]\d{1,2}[-.]\d{2,4}|\d{4}[-.]\d{1,2}[-.]\d{1,2})(?!\d)")
_ISO_DATE = re.compile(r"(?<!\d)(?:19|20)\d\d-[01]\d-[0-3]\d(?!\d)")


def _phone_ok(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if not 9 <= len(digits) <= 15:
        return False
    if "." in value and re.fullmatch(r"[\d.]+", value):
        return False  # 1.234.567.890: a number with thousands separators
    if _DATE_START.match(value) or _ISO_DATE.search(value):
        return False  # 23-01-2019 13: a date and the hour after it
    return value.startswith(("+", "(")) or bool(re.search(r"\d[ .-]\d", value))


@register_recognizer("phone", priority=10)
def find_phones(text: str) -> list[Span]:
    return _spans(_PHONE, text, "phone", _phone_ok)


def detect(text: str, kinds: list[str] | None = None) -> list[Span]:
    """All PII spans in ``text`` from the chosen recognizers (default: all), overlaps resolved by priority.

    Raises:
        KeyError: an unknown recognizer name.
    """
    names = list(RECOGNIZERS) if kinds is None else kinds
    spans = [span for name in names for span in RECOGNIZERS[name](text)]
    spans.sort(key=lambda s: (-PRIORITY[s.kind], s.start))
    chosen: list[Span] = []
    for span in spans:
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def replacement(span_kind: str, value: str, mode: str, salt: bytes) -> str:
    """The token that replaces a PII value: ``[EMAIL]`` (mask) or ``[EMAIL_<8 hex>]`` (hash, salted HMAC)."""
    label = span_kind.upper()
    if mode == "hash":
        digest = hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()[:8]
        return f"[{label}_{digest}]"
    return f"[{label}]"
