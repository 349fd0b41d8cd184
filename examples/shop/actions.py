"""Custom actions of the demo shop: order lookup and returns against a demo order API, and the check
that an order number exists (a form validator)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bot.actions.sdk import ActionContext, Validation, action, validator
from bot.events import Event, SlotSet
from bot.types import SlotValue


class DemoOrderApi:
    """Stands in for the shop's order service: reads data/orders.json."""

    def __init__(self, path: Path) -> None:
        self._orders: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))

    def find(self, order_id: str) -> dict[str, Any] | None:
        return self._orders.get(order_id.strip().upper())


# `async def`: kefu runs it on the event loop, as the lookup is quick and blocks on nothing (a real order service
# would be awaited here through an async HTTP client). A plain `def` that blocks (a database driver, requests)
# is run in a worker thread instead, which costs a thread hand-off per call.
@action("action_check_order")
async def check_order(ctx: ActionContext) -> list[Event]:
    order_id = str(ctx.slots.get("order_id") or "")
    order = DemoOrderApi(ctx.project_dir / "data" / "orders.json").find(order_id)
    if order is None:
        # forget the wrong number, so asking again starts the form afresh
        return [ctx.utter("utter_order_not_found"), SlotSet(name="order_id", value=None)]
    status = order["status_zh"] if ctx.language == "zh" else order["status_en"]
    return [ctx.utter("utter_order_status", order_id=order_id.upper(), order_status=status)]


@validator("order_exists")
def order_exists(value: SlotValue, ctx: ActionContext) -> Validation:
    order_id = str(value).strip().upper()
    if DemoOrderApi(ctx.project_dir / "data" / "orders.json").find(order_id) is None:
        return Validation(valid=False, response="utter_order_not_found", reason=f"no order {order_id}")
    return Validation(valid=True, value=order_id)


@action("action_submit_return")
def submit_return(ctx: ActionContext) -> list[Event]:
    order_id = str(ctx.slots.get("order_id") or "")
    return_id = "RT" + hashlib.sha256(order_id.encode()).hexdigest()[:8].upper()
    return [ctx.utter("utter_return_submitted", return_id=return_id), SlotSet(name="return_reason", value=None)]
