"""
### Example ETL

Extracts a small CSV of orders, transforms it with a helper from `plugins/` (`etl_helpers`) and loads
the summary into the task log. A template for a TaskFlow pipeline: extract, transform, load.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

ORDERS_CSV = """order_id,amount
1001,301.27
1002,433.21
1003,502.22
"""


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={"owner": "localflow", "retries": 2},
    tags=["example", "etl"],
)
def example_etl():
    """Extract orders, summarize them with a plugins/ helper, report the summary."""

    @task
    def extract() -> str:
        """Read the raw orders (here from a constant; in real life from an API or a file)."""
        return ORDERS_CSV

    @task(multiple_outputs=False)
    def transform(raw: str) -> dict[str, float]:
        """Parse the orders and summarize them."""
        from etl_helpers import parse_orders, summarize

        orders = parse_orders(raw)
        summary = summarize(orders)
        return summary

    @task
    def load(summary: dict[str, float]) -> None:
        """Report the summary."""
        print(f"Loaded {summary['count']:.0f} orders, total {summary['total']:.2f}")

    load(transform(extract()))


example_etl()
