"""The ETL helpers in plugins/ parse and summarize orders."""

from __future__ import annotations

import pytest
from etl_helpers import parse_orders, summarize

# raw CSV, expected summary
CASES = (
    ("order_id,amount\n1,1.5\n2,2.25\n", {"count": 2.0, "total": 3.75}),
    ("order_id,amount\n", {"count": 0.0, "total": 0.0}),
    ("\norder_id,amount\n7,10\n\n", {"count": 1.0, "total": 10.0}),
)


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_summarize_parsed_orders(raw: str, expected: dict[str, float]):
    """It totals the parsed amounts."""
    assert summarize(parse_orders(raw)) == expected


def test_rejects_unexpected_header():
    """It refuses a CSV whose columns it does not know."""
    with pytest.raises(ValueError, match="unexpected header"):
        parse_orders("id,price\n1,2\n")
