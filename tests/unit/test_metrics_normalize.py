"""Field normalisers: text, exact, number/money, date and fuzzy comparisons."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tunewise.metrics.normalize import is_empty, normalize_text, parse_date, parse_number, token_f1, values_equal


def test_text_normaliser_nfkc_casefold_whitespace() -> None:
    assert normalize_text("  Café \t  LUX\n") == "café lux"
    assert values_equal("Café", "CAFE\u0301")  # decomposed accent + upper case
    assert values_equal("ＡＢＣ", "abc")  # full-width letters under NFKC
    assert not values_equal("Cafe", "Café")


def test_exact_normaliser_keeps_case_and_spacing() -> None:
    assert values_equal("Abc", "Abc", "exact")
    assert not values_equal("Abc", "abc", "exact")
    assert not values_equal("Abc ", "Abc", "exact")
    assert values_equal(9, "9", "exact")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RM 1,234.5", Decimal("1234.50")),
        ("RM33.90", Decimal("33.9")),
        ("-RM 0.02", Decimal("-0.02")),
        ("$9.99", Decimal("9.99")),
        ("MYR1,000,000.00", Decimal("1000000")),
        ("12,50", Decimal("12.5")),
        ("1.234,50", Decimal("1234.5")),
        ("(12.00)", Decimal("-12")),
        ("1.500", Decimal("1.5")),
        (9, Decimal("9")),
        (9.5, Decimal("9.5")),
        ("abc", None),
        ("", None),
        (True, None),
    ],
)
def test_parse_number(text: object, expected: Decimal | None) -> None:
    assert parse_number(text) == expected


def test_money_normaliser_compares_as_decimal() -> None:
    assert values_equal("RM 1,234.5", "1234.50", "money")
    assert values_equal(9, "9.00", "money")
    assert values_equal("9.00", "RM9", "number")
    assert not values_equal("9.01", "9.00", "money")
    # Unparseable on one side falls back to text comparison.
    assert not values_equal("nine", "9.00", "money")
    assert values_equal("N/A", "n/a", "money")


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("25/12/2018", "2018-12-25"),
        ("25-12-18", "2018-12-25"),
        ("2018-12-25", "2018-12-25"),
        ("02 MAR 2018", "2018-03-02"),
        ("02-Mar-2018", "2018-03-02"),
        ("07/FEB/2018", "2018-02-07"),
        ("30 DEC 17", "2017-12-30"),
        ("20180304", "2018-03-04"),
        ("25032018", "2018-03-25"),
        ("12.01.2019", "2019-01-12"),
        ("Oct 9, 2018", "2018-10-09"),
        ("3rd March 2018", "2018-03-03"),
        ("(29/12/2017)", "2017-12-29"),
        ("12-01-19 21:13", "2019-01-12"),
        ("12/25/2018", "2018-12-25"),  # day-first impossible -> month-first
        ("2018/12/25", "2018-12-25"),
        ("no date here", None),
        ("32/13/2018", None),
    ],
)
def test_parse_date(text: str, iso: str | None) -> None:
    assert parse_date(text) == iso


def test_date_normaliser_day_first_and_fallback() -> None:
    assert values_equal("2018-03-02", "02/03/2018", "date")
    assert not values_equal("2018-02-03", "02/03/2018", "date")
    assert values_equal("Tomorrow", "tomorrow", "date")  # both unparseable -> text
    assert not values_equal("soon", "02/03/2018", "date")


def test_token_f1_and_fuzzy_threshold() -> None:
    gold = "NO 12, JALAN ABC, 81200 JOHOR"
    pred = "No. 12 Jalan ABC 81200 Johor Bahru"
    assert token_f1(pred, gold) == pytest.approx(12 / 13)  # P = 6/7, R = 1
    assert values_equal(pred, gold, "fuzzy", fuzzy_threshold=0.9)
    assert not values_equal(pred, gold, "fuzzy", fuzzy_threshold=0.95)
    assert not values_equal(pred, gold, "text")


def test_empty_values_and_unknown_normaliser() -> None:
    assert is_empty(None) and is_empty("  ") and is_empty([]) and not is_empty(0)
    with pytest.raises(ValueError, match="unknown normaliser 'fancy'"):
        values_equal("a", "a", "fancy")
