"""CSV import of a custom store's orders: one row per order line, grouped by ``external_id``.

Columns (header row required): ``external_id``, ``number``, ``currency``, ``placed_at`` (ISO
8601), ``total`` and optionally ``subtotal``, ``shipping``, ``tax``, ``email``, ``phone``,
``payment_status``, ``fulfillment_status``, ``status``, and per line ``line_id``, ``sku``,
``title``, ``quantity``, ``unit_price``. Amounts are decimal strings in major units ("19.99",
"1500" JPY) parsed exactly (kefu.commerce.money). Each order is upserted in its own transaction;
an order with any bad row is skipped whole and reported with its row numbers, so nothing is
half-imported.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from django.utils.dateparse import parse_datetime

from kefu.commerce import actions, money
from kefu.commerce.models import Store
from kefu.core.errors import InvalidInput

REQUIRED = ("external_id", "number", "currency", "placed_at", "total")
MAX_ROWS = 50_000


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


def _order_from_rows(rows: list[tuple[int, dict[str, str]]]) -> actions.OrderData:
    first = rows[0][1]
    currency = money.normalize_currency(first["currency"])
    placed = parse_datetime(first["placed_at"].strip())
    if placed is None or placed.tzinfo is None:
        raise InvalidInput("placed_at must be an ISO 8601 time with its offset", field="placed_at")

    def amount(row: dict[str, str], name: str) -> int:
        return money.to_minor(row.get(name) or "0", currency)

    lines = []
    for _, row in rows:
        if not (row.get("title") or row.get("sku")):
            continue
        quantity = (row.get("quantity") or "1").strip()
        if not quantity.isdigit():
            raise InvalidInput(f"quantity {quantity!r} is not a whole number", field="quantity")
        lines.append(
            actions.LineData(
                external_id=(row.get("line_id") or "").strip(),
                sku=(row.get("sku") or "").strip(),
                title=(row.get("title") or row.get("sku") or "").strip(),
                quantity=int(quantity),
                unit_price=amount(row, "unit_price"),
            )
        )
    return actions.OrderData(
        external_id=first["external_id"].strip(),
        number=first["number"].strip(),
        currency=currency,
        placed_at=placed,
        total=amount(first, "total"),
        subtotal=amount(first, "subtotal"),
        shipping=amount(first, "shipping"),
        tax=amount(first, "tax"),
        email=(first.get("email") or "").strip(),
        phone=(first.get("phone") or "").strip(),
        payment_status=(first.get("payment_status") or "pending").strip(),
        fulfillment_status=(first.get("fulfillment_status") or "unfulfilled").strip(),
        status=(first.get("status") or "open").strip(),
        lines=lines,
        raw={"source": "csv"},
    )


def import_orders_csv(*, store: Store, content: bytes) -> ImportResult:
    """Import ``content`` (UTF-8 CSV, BOM allowed) into ``store``; see the module docstring."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the file is not UTF-8 text", field="file") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput(f"missing columns: {', '.join(missing)}", field="file")
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for number, row in enumerate(reader, start=2):
        if number > MAX_ROWS + 1:
            raise InvalidInput(f"more than {MAX_ROWS} rows; split the file", field="file")
        key = (row.get("external_id") or "").strip()
        if not key:
            error = f"row {number}: external_id is empty"
            groups.setdefault("", []).append((number, {"_error": error}))
            continue
        groups.setdefault(key, []).append((number, row))
    result = ImportResult()
    for key, rows in groups.items():
        where = f"rows {rows[0][0]}-{rows[-1][0]}" if len(rows) > 1 else f"row {rows[0][0]}"
        if not key:
            result.errors += [row["_error"] for _, row in rows]
            continue
        try:
            _, created = actions.upsert_order(store=store, data=_order_from_rows(rows))
        except (InvalidInput, KeyError) as exc:
            message = exc.message if isinstance(exc, InvalidInput) else f"missing {exc}"
            result.errors.append(f"order {key} ({where}): {message}")
            continue
        if created:
            result.created += 1
        else:
            result.updated += 1
    return result
