"""The shop's custom actions for the Rasa comparison, over rasa-sdk: the same order lookup and return as
examples/shop/actions.py, and action_answer as a plain FAQ lookup (no semantic search, unlike kefu's)."""

import csv
import hashlib
import json
from pathlib import Path

from rasa_sdk import Action
from rasa_sdk.events import SlotSet

SHOP = Path((Path(__file__).parent / "shop_path.txt").read_text(encoding="utf-8").strip())  # bench/rasa_project.py
ORDERS = json.loads((SHOP / "data" / "orders.json").read_text(encoding="utf-8"))
FAQ = list(csv.DictReader((SHOP / "knowledge" / "faq.csv").open(encoding="utf-8")))


class CheckOrder(Action):
    def name(self):
        return "action_check_order"

    def run(self, dispatcher, tracker, domain):
        order_id = str(tracker.get_slot("order_id") or "").strip().upper()
        order = ORDERS.get(order_id)
        if order is None:
            dispatcher.utter_message(response="utter_order_not_found")
            return [SlotSet("order_id", None)]
        dispatcher.utter_message(response="utter_order_status", order_id=order_id, order_status=order["status_zh"])
        return []


class SubmitReturn(Action):
    def name(self):
        return "action_submit_return"

    def run(self, dispatcher, tracker, domain):
        order_id = str(tracker.get_slot("order_id") or "")
        return_id = "RT" + hashlib.sha256(order_id.encode()).hexdigest()[:8].upper()
        dispatcher.utter_message(response="utter_return_submitted", return_id=return_id)
        return [SlotSet("return_reason", None)]


class Answer(Action):
    def name(self):
        return "action_answer"

    def run(self, dispatcher, tracker, domain):
        text = tracker.latest_message.get("text", "")
        best = max(FAQ, key=lambda row: len(set(text) & set(row["question"])))
        dispatcher.utter_message(text=best["answer"])
        return []


class Handoff(Action):
    def name(self):
        return "action_handoff"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(response="utter_handoff")
        return []
