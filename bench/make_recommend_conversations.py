"""Writes the demo shop's test conversations for `kefu test recommend`: seeded customer journeys over its FAQ
and product questions, half in Chinese and half in English.

    .venv/bin/python bench/make_recommend_conversations.py            # examples/shop/tests/recommend_conversations.yml
    .venv/bin/python bench/make_recommend_conversations.py --count 600 --seed 1 --out /tmp/more.yml

Each conversation follows one journey of the table below (what one customer goes on to ask), from its start or
joining it one step in, 2 to 5 questions long; some pick up a stray question on the way, some ask the same
thing twice in other words, and a tenth are random browsing. A question is written as the FAQ writes it or as
one of its paraphrases (the `similar` column), a product question as a customer would type it, so
`kefu test recommend` resolves texts through the knowledge base as the bot would.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

import yaml

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"
OUT = SHOP / "tests" / "recommend_conversations.yml"

# Journeys a shop sees: (weight, steps, what the customer is doing). A step is an FAQ id without its language
# (`ret_02`) or a product question `@relation` about the one product the conversation is about.
JOURNEYS: tuple[tuple[int, tuple[str, ...], str], ...] = (
    (8, ("ret_01", "ret_02", "ref_01", "ref_02"), "may I return it, how, then when and where the money comes back"),
    (6, ("ret_02", "ref_01", "ref_02", "ref_03"), "returning an item, then following the refund"),
    (4, ("ret_04", "ret_02", "ref_01"), "is it returnable once opened, how to return, refund time"),
    (5, ("ref_01", "ref_02", "ref_03"), "refund time, where it goes, where to see it"),
    (4, ("ref_04", "ref_01", "ref_02"), "cancelled a paid order: refund, when, where"),
    (6, ("pay_03", "pay_04", "ref_01", "ref_03"), "payment failed, charged anyway, when the money comes back"),
    (3, ("pay_03", "pay_01", "pay_02"), "payment failed, other ways to pay, installments"),
    (3, ("pay_01", "pay_02", "inv_01"), "how to pay, installments, an invoice"),
    (6, ("acc_01", "acc_03", "acc_02"), "forgot the password, account locked, change the phone number"),
    (5, ("mem_01", "mem_02", "mem_03"), "how points are earned, how to use them, the balance"),
    (3, ("mem_03", "mem_02", "mem_01"), "the balance, what points buy, earning more"),
    (7, ("ship_01", "ship_07", "ship_06"), "delivery time, tracking the parcel, changing the address"),
    (5, ("ship_01", "ship_02", "ship_03"), "delivery time, its cost, the courier"),
    (3, ("ship_04", "ship_02", "pay_01"), "ordering from abroad: shipping cost, paying"),
    (3, ("ship_06", "ship_07", "ship_01"), "wrong address, tracking, when it arrives"),
    (4, ("ret_03", "war_02", "war_03"), "arrived broken: exchange, a warranty claim, is damage covered"),
    (4, ("war_01", "war_02", "war_03"), "warranty length, how to claim, what it covers"),
    (4, ("inv_01", "inv_02", "inv_03"), "an invoice, in the company's name, fixing a wrong one"),
    (7, ("@price", "@warranty_months", "war_02", "ship_01"), "a product's price, its warranty, then delivery"),
    (4, ("@price", "@colors", "@stock", "ship_01"), "a product's price, colours, stock, delivery"),
    (3, ("@battery", "@charger", "@price"), "a device's battery, its charger, its price"),
    (3, ("@stock", "@price", "pay_02"), "in stock? price, paying in installments"),
)
BROWSING = 0.1  # conversations of random questions
STRAY = 0.25  # journeys with one unrelated question in the middle
REPHRASE = 0.08  # journeys where one question is asked again in other words
CANONICAL = 0.4  # questions written as the FAQ writes them; the rest are paraphrases

PRODUCT_QUESTIONS = {
    "zh": {
        "price": ("{p}多少钱？", "{p}的价格是多少？", "{p}卖多少钱"),
        "warranty_months": ("{p}保修多久？", "{p}的保修期是多久？", "{p}质保多久"),
        "colors": ("{p}有哪些颜色？", "{p}有什么颜色可选"),
        "stock": ("{p}有货吗？", "{p}还有库存吗？"),
        "battery": ("{p}电池多大？", "{p}续航怎么样"),
        "charger": ("{p}用什么充电器？", "{p}配什么充电器"),
    },
    "en": {
        "price": ("How much is the {p}?", "What does the {p} cost?", "{p} price"),
        "warranty_months": ("What is the warranty on the {p}?", "How long is the {p} warranty?"),
        "colors": ("What colors does the {p} come in?", "{p} colors"),
        "stock": ("Is the {p} in stock?", "Do you have the {p} in stock?"),
        "battery": ("How big is the {p} battery?", "What is the battery capacity of the {p}?"),
        "charger": ("Which charger does the {p} use?", "What charger comes with the {p}?"),
    },
}


@dataclass(frozen=True, slots=True)
class Shop:
    faq: dict[tuple[str, str], tuple[str, ...]]  # (base id, language) -> the question, then its paraphrases
    products: dict[str, dict[str, str]]  # product id -> language -> name
    relations: dict[str, frozenset[str]]  # product id -> its relations in the graph


def read_shop(knowledge: Path) -> Shop:
    faq: dict[tuple[str, str], tuple[str, ...]] = {}
    with (knowledge / "faq.csv").open(encoding="utf-8-sig") as file:
        for row in csv.DictReader(file):
            base = row["id"].removeprefix("faq_").removesuffix(f"_{row['lang']}")
            similar = [s.strip() for s in row["similar"].split("|") if s.strip()]
            faq[(base, row["lang"])] = (row["question"], *similar)
    with (knowledge / "entities.csv").open(encoding="utf-8-sig") as file:
        products = {r["id"]: {"zh": r["name_zh"], "en": r["name_en"]} for r in csv.DictReader(file)}
    relations: dict[str, set[str]] = {}
    with (knowledge / "graph.csv").open(encoding="utf-8-sig") as file:
        for row in csv.DictReader(file):
            relations.setdefault(row["subject"], set()).add(row["relation"])
    products = {p: names for p, names in products.items() if p in relations}
    return Shop(faq, products, {p: frozenset(r) for p, r in relations.items()})


def conversation(shop: Shop, language: str, rng: random.Random) -> list[str]:
    """One customer's questions: a journey (or random browsing) written in `language`."""
    faq_ids = sorted({base for base, _ in shop.faq})
    if rng.random() < BROWSING:
        return [_faq_text(shop, base, language, rng) for base in rng.sample(faq_ids, rng.randint(2, 4))]
    steps = list(_journey(rng))
    start = 1 if len(steps) > 3 and rng.random() < 0.3 else 0
    steps = steps[start : start + rng.randint(2, min(5, len(steps) - start))]
    if rng.random() < STRAY and len(steps) < 5:
        steps.insert(rng.randint(1, len(steps)), rng.choice([b for b in faq_ids if b not in steps]))
    if rng.random() < REPHRASE and len(steps) < 5:
        at = rng.randrange(len(steps))
        steps.insert(at + 1, steps[at])
    wanted = {s.removeprefix("@") for s in steps if s.startswith("@")}
    product = rng.choice(sorted(p for p, rel in shop.relations.items() if wanted <= rel and p in shop.products))
    return [_text(shop, step, language, product, rng) for step in steps]


def _journey(rng: random.Random) -> tuple[str, ...]:
    weights = [weight for weight, _, _ in JOURNEYS]
    return rng.choices([steps for _, steps, _ in JOURNEYS], weights=weights)[0]


def _text(shop: Shop, step: str, language: str, product: str, rng: random.Random) -> str:
    if step.startswith("@"):
        template = rng.choice(PRODUCT_QUESTIONS[language][step.removeprefix("@")])
        return template.format(p=shop.products[product][language])
    return _faq_text(shop, step, language, rng)


def _faq_text(shop: Shop, base: str, language: str, rng: random.Random) -> str:
    question, *similar = shop.faq[(base, language)]
    return question if not similar or rng.random() < CANONICAL else rng.choice(similar)


def render(conversations: list[tuple[str, list[str]]], seed: int) -> str:
    lines = [
        "# Conversations for `kefu test recommend`: each one the questions a customer asked in turn, written as",
        "# text (resolved to the FAQ entry or graph question that answers it) or as an item id (faq_ship_07_zh).",
        f"# Generated by bench/make_recommend_conversations.py --seed {seed}; edit that script, not this file.",
        "conversations:",
    ]
    for language, questions in conversations:
        lines += [f"  - lang: {language}", f"    questions: [{', '.join(_scalar(q) for q in questions)}]"]
    return "\n".join(lines) + "\n"


def _scalar(text: str) -> str:
    """`text` bare when YAML reads it back as the same text inside a flow list, else double-quoted."""
    try:
        if yaml.safe_load(f"[{text}, x]") == [text, "x"]:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a double-quoted YAML scalar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1200, help="conversations, half zh and half en")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    shop, rng = read_shop(SHOP / "knowledge"), random.Random(args.seed)
    languages = ["zh" if n % 2 == 0 else "en" for n in range(args.count)]
    made = [(language, conversation(shop, language, rng)) for language in languages]
    args.out.write_text(render(made, args.seed), encoding="utf-8")
    print(f"Wrote {len(made)} conversations to {args.out}.")


if __name__ == "__main__":
    main()
