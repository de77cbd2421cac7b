"""PII recognizers: positive and negative cases for each, and redaction that keeps input and target aligned."""

from __future__ import annotations

import pytest

from tunewise.data.pii import RECOGNIZERS, detect, iban_ok, luhn_ok, register_recognizer
from tunewise.data.redact import redact_example, redact_examples
from tunewise.records import Example


def kinds(text: str) -> list[tuple[str, str]]:
    return [(s.kind, s.value) for s in detect(text)]


@pytest.mark.parametrize(
    "text, value",
    [
        ("mail me at jane.doe+x@example.co.uk today", "jane.doe+x@example.co.uk"),
        ("SALES@LEEWAHFLORIST.COM", "SALES@LEEWAHFLORIST.COM"),
    ],
)
def test_email_positive(text: str, value: str) -> None:
    assert ("email", value) in kinds(text)


@pytest.mark.parametrize("text", ["user@localhost", "a @ b.com", "version 1.2@3", "@handle on social"])
def test_email_negative(text: str) -> None:
    assert not [k for k, _ in kinds(text) if k == "email"]


@pytest.mark.parametrize(
    "number", ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "4553 8800 9593 0119"]
)
def test_card_positive_luhn_valid(number: str) -> None:
    assert kinds(f"paid with {number} thanks") == [("credit_card", number)]


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1112",  # Luhn-invalid
        "5500-0000-0000-0005",  # Luhn-invalid
        "378282246310006",  # Luhn-invalid Amex
        "9556939040116",  # EAN-13 barcode on a receipt
        "4060010002913",  # Luhn-valid EAN-13 starting with 4: retired 13-digit Visa length, not flagged
    ],
)
def test_card_negative(number: str) -> None:
    assert "credit_card" not in [k for k, _ in kinds(f"code {number} end")]


def test_luhn() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")


@pytest.mark.parametrize(
    "iban", ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "FR1420041010050500013M02606"]
)
def test_iban_positive(iban: str) -> None:
    assert kinds(f"IBAN {iban}.") == [("iban", iban)]


@pytest.mark.parametrize(
    "text", ["GB82 WEST 1234 5698 7654 33", "DE89370400440532013001", "OR18031002160274", "ZZ82WEST12345698765432"]
)
def test_iban_negative(text: str) -> None:
    assert "iban" not in [k for k, _ in kinds(text)]
    assert not iban_ok(text)


@pytest.mark.parametrize(
    "text, value",
    [
        ("from 192.168.1.20 at noon", "192.168.1.20"),
        ("host 2001:db8::8a2e:370:7334 replied", "2001:db8::8a2e:370:7334"),
        ("loopback ::1 only", "::1"),
    ],
)
def test_ip_positive(text: str, value: str) -> None:
    assert ("ip_address", value) in kinds(text)


@pytest.mark.parametrize("text", ["version 1.2.3.4.5", "999.1.1.1", "time 8:13:39 PM", "total 12.50"])
def test_ip_negative(text: str) -> None:
    assert "ip_address" not in [k for k, _ in kinds(text)]


def test_us_ssn() -> None:
    assert kinds("SSN 123-45-6789") == [("us_ssn", "123-45-6789")]
    for bad in ("000-12-3456", "666-12-3456", "123-00-4567", "123-45-0000", "923-45-6789"):
        assert "us_ssn" not in [k for k, _ in kinds(f"SSN {bad}")], bad


def test_malaysian_nric() -> None:
    assert kinds("IC: 880101-14-5678") == [("my_nric", "880101-14-5678")]
    # Month 13 is no date; place code 00 is unassigned.
    assert "my_nric" not in [k for k, _ in kinds("IC: 881301-14-5678")]
    assert "my_nric" not in [k for k, _ in kinds("IC: 880101-00-5678")]


@pytest.mark.parametrize(
    "text, value",
    [
        ("TEL: 07-355 2616", "07-355 2616"),
        ("call +60 12-345 6789 now", "+60 12-345 6789"),
        ("(603) 6243 5520", "(603) 6243 5520"),
        ("+1 415 555 0132", "+1 415 555 0132"),
    ],
)
def test_phone_positive(text: str, value: str) -> None:
    assert ("phone", value) in kinds(text)


@pytest.mark.parametrize(
    "text",
    [
        "9556939040116",  # barcode: no separators
        "DATE 23-01-2019 13:45",  # date + hour
        "2017-12-28 22:10",
        "TOTAL 7838.80",
        "18/03/18 15:17 06051 02",  # time then numbers
        "1.234.567.890",
    ],
)
def test_phone_negative(text: str) -> None:
    assert "phone" not in [k for k, _ in kinds(text)], kinds(text)


def test_registry_accepts_a_new_recognizer() -> None:
    import re

    @register_recognizer("order_id", priority=5)
    def find_order_ids(text: str) -> list:
        from tunewise.data.pii import Span

        return [Span(m.start(), m.end(), "order_id", m.group()) for m in re.finditer(r"ORD-\d{6}", text)]

    try:
        assert kinds("ref ORD-123456") == [("order_id", "ORD-123456")]
        assert detect("ref ORD-123456", ["email"]) == []
    finally:
        RECOGNIZERS.pop("order_id")


def _example(text: str, target: object) -> Example:
    return Example(
        id="1",
        messages=[{"role": "system", "content": "sys a@b.com"}, {"role": "user", "content": text}],
        target=target,
    )


def test_mask_keeps_input_and_target_aligned() -> None:
    example = _example("Shop TEL 07-355 2616, mail shop@example.com", {"phone": "07-355 2616", "company": "SHOP"})
    redacted, counts = redact_example(example, mode="mask", salt=b"s")
    assert redacted.messages[1]["content"] == "Shop TEL [PHONE], mail [EMAIL]"
    assert redacted.target == {"phone": "[PHONE]", "company": "SHOP"}
    assert redacted.messages[0]["content"] == "sys a@b.com"  # the system prompt is the task's, not data
    assert counts == {"phone": 2, "email": 1}


def test_hash_mode_is_stable_salted_and_aligned() -> None:
    example = _example("write to jane@example.com", {"email": "jane@example.com"})
    one, _ = redact_example(example, mode="hash", salt=b"salt-1")
    again, _ = redact_example(example, mode="hash", salt=b"salt-1")
    other, _ = redact_example(example, mode="hash", salt=b"salt-2")
    token = one.target["email"]
    assert token.startswith("[EMAIL_") and token in one.messages[1]["content"]
    assert again.target == one.target and other.target != one.target
    assert "jane" not in one.messages[1]["content"]


def test_drop_row_and_report_modes() -> None:
    clean, dirty = _example("no pii here", "x"), _example("mail jane@example.com", "y")
    kept, report = redact_examples([clean, dirty], mode="drop_row", salt=b"s")
    assert kept == [clean] and report.dropped == ["1"] and report.counts == {"email": 1}
    kept, report = redact_examples([clean, dirty], mode="report", salt=b"s")
    assert kept == [clean, dirty] and report.rows_with_pii == 1
