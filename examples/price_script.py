#!/usr/bin/env python3
"""An example price script for ``pasar provider --strategy script:examples/price_script.py``.

The contract (pasar-price-script/1, after Akash's bid price script): the request arrives as one
JSON object on stdin (see ``pasar.provider.strategy.script_request``); print one decimal price
per hour on stdout and exit 0 to bid; exit non-zero to decline. The agent kills a script that
takes longer than its timeout (5 s by default) and then does not bid.

This policy:

* decline leases longer than a day (this machine is rebooted nightly, say);
* when the provider's own table prices the lease, bid that, but never above the max;
* otherwise bid 10% under the order's max price.

Prices are handled as :class:`decimal.Decimal` and rounded down to six decimals (one
micro-unit), never as floats.
"""

from __future__ import annotations

import json
import sys
from decimal import ROUND_DOWN, Decimal
from typing import Any

MAX_DURATION_S = 24 * 3600
DISCOUNT = Decimal("0.9")
MICRO = Decimal("0.000001")


def price(request: dict[str, Any]) -> Decimal | None:
    """The price to bid per hour, or None to decline."""
    duration = request.get("duration_s")
    if isinstance(duration, int) and duration > MAX_DURATION_S:
        return None
    max_price = Decimal(request["max_price_per_hour"])
    table = request.get("table_price")
    bid = Decimal(table) if table is not None else max_price * DISCOUNT
    return min(bid, max_price).quantize(MICRO, rounding=ROUND_DOWN)


def main() -> int:
    try:
        request = json.load(sys.stdin)
        bid = price(request)
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        print(f"cannot price this request: {exc}", file=sys.stderr)
        return 2
    if bid is None or bid <= 0:
        print("declined", file=sys.stderr)
        return 1
    print(bid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
