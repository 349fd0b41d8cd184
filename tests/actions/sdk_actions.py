"""rasa-sdk actions that the action-server tests serve: `python -m rasa_sdk --actions tests.actions.sdk_actions`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, AllSlotsReset, ConversationPaused, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.interfaces import ActionExecutionRejection

Events = list[dict[str, Any]]


class ActionCheckOrder(Action):
    """Reads a slot and the latest entity; answers with a domain response, a text with buttons and slots."""

    def name(self) -> str:
        return "action_check_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        order_id = tracker.get_slot("order_id")
        product = next(tracker.get_latest_entity_values("product"), None)
        dispatcher.utter_message(response="utter_order_status", status="已发货 shipped")
        dispatcher.utter_message(
            text=f"{order_id}: {product}",
            buttons=[{"title": "确认 OK", "payload": "/affirm"}, {"title": "转人工 Agent", "payload": "/handoff"}],
        )
        return [SlotSet("order_status", "shipped"), SlotSet("product", product)]


class ActionEchoTracker(Action):
    """Puts what rasa-sdk's Tracker and domain saw into a slot, so tests can check kefu's conversion."""

    def name(self) -> str:
        return "action_echo_tracker"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        seen = {
            "sender_id": tracker.sender_id,
            "slots": tracker.current_slot_values(),
            "intent": tracker.get_intent_of_latest_message(),
            "text": tracker.latest_message.get("text"),
            "entities": list(tracker.get_latest_entity_values("order_id")),
            "latest_action": tracker.latest_action_name,
            "active_loop": tracker.active_loop_name,
            "channel": tracker.get_latest_input_channel(),
            "paused": tracker.is_paused(),
            "events": [e["event"] for e in tracker.events],
            "last_bot": tracker.get_last_event_for("bot"),
            "domain_slots": sorted(domain["slots"]),
            "domain_forms": domain["forms"],
            "domain_responses": sorted(domain["responses"]),
        }
        return [SlotSet("echo", json.dumps(seen, ensure_ascii=False))]


class ActionLoopAndReset(Action):
    def name(self) -> str:
        return "action_loop_and_reset"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        return [AllSlotsReset(), ActiveLoop("order_form"), ActiveLoop(None), ConversationPaused()]


class ActionFollowup(Action):
    def name(self) -> str:
        return "action_followup"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        return [FollowupAction("utter_greet")]


class ActionSlow(Action):
    def name(self) -> str:
        return "action_slow"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        await asyncio.sleep(2.0)
        return []


class ActionReject(Action):
    def name(self) -> str:
        return "action_reject"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        raise ActionExecutionRejection(self.name(), "order id missing 缺少订单号")


class ActionCrash(Action):
    def name(self) -> str:
        return "action_crash"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> Events:
        raise RuntimeError("the order database is down")


class ValidateOrderForm(FormValidationAction):
    """Rasa's form validation: an order id must start with SO; a bad one is cleared and the user told why."""

    def name(self) -> str:
        return "validate_order_form"

    def validate_order_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        if isinstance(value, str) and value.upper().startswith("SO"):
            return {"order_id": value.upper()}
        dispatcher.utter_message(response="utter_bad_order_id", value=value)
        return {"order_id": None}
