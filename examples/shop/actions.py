"""Custom actions of the demo shop: the order-status lookup against a demo order API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.actions.sdk import ActionContext, action
from bot.events import Event, SlotSet


class DemoOrderApi:
    """Stands in for the shop's order service: reads data/orders.json."""

    def __init__(self, path: Path) -> None:
        self._orders: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))

    def find(self, order_id: str) -> dict[str, Any] | None:
        return self._orders.get(order_id.strip().upper())


@action("action_check_order")
def check_order(ctx: ActionContext) -> list[Event]:
    order_id = str(ctx.slots.get("order_id") or "")
    order = DemoOrderApi(ctx.project_dir / "data" / "orders.json").find(order_id)
    if order is None:
        # forget the wrong number, so asking again starts the form afresh
        return [ctx.utter("utter_order_not_found"), SlotSet(name="order_id", value=None)]
    status = order["status_zh"] if ctx.language == "zh" else order["status_en"]
    return [ctx.utter("utter_order_status", order_id=order_id.upper(), order_status=status)]
