"""Plain-Python helpers shared by DAGs: pure functions, importable and testable without Airflow.

Airflow puts ``plugins/`` on ``sys.path`` of every component, so a DAG imports this as ``etl_helpers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def parse_orders(raw: str) -> list[dict[str, float | str]]:
    """Parse ``order_id,amount`` CSV lines (header first) into records."""
    lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
    header, *rows = lines
    if header.split(",") != ["order_id", "amount"]:
        raise ValueError(f"unexpected header {header!r}; expected 'order_id,amount'")
    records = []
    for row in rows:
        order_id, amount = row.split(",")
        records.append({"order_id": order_id, "amount": float(amount)})
    return records


def summarize(orders: Iterable[Mapping[str, float | str]]) -> dict[str, float]:
    """Total and count of the orders."""
    amounts = [float(order["amount"]) for order in orders]
    return {"count": float(len(amounts)), "total": round(sum(amounts), 2)}
