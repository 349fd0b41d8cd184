"""Personal-data leaks in replies: the customer's own data may be repeated (then masked), nobody else's."""

from __future__ import annotations

from bot.events import Session, SlotSet, UserUttered
from bot.types import Fact
from safety.pii import PiiMasker
from safety.pipeline import SafetyPipeline
from safety.privacy import PiiLeakCheck

OWN = Session("c").with_events(
    [
        UserUttered(text="我的手机号是13812345678，邮箱 li.lei@example.com"),
        SlotSet(name="card", value="4111111111111111"),
    ]
)


def test_the_customers_own_data_passes_and_is_masked_after() -> None:
    pipeline = SafetyPipeline([PiiLeakCheck(), PiiMasker()])
    outcome = pipeline.run("我们会致电 138 1234 5678，并发邮件到 li.lei@example.com。", stage="output", session=OWN)
    assert outcome.allowed
    assert "138****5678" in outcome.text and "li.lei@example.com" not in outcome.text


def test_someone_elses_number_blocks_the_reply() -> None:
    verdict = PiiLeakCheck().check("The buyer's number is 13987654321.", stage="output", session=OWN)
    assert (verdict.allowed, verdict.category) == (False, "privacy")
    assert "cn_mobile" in verdict.reason and "13987654321" not in verdict.reason


def test_a_card_from_the_slots_and_a_hotline_from_the_facts_are_known() -> None:
    facts = [Fact("f", "客服邮箱 service@xingyao.example", "faq", 1.0, "faq.csv#3")]
    check = PiiLeakCheck()
    assert check.check("退款将退回卡 4111 1111 1111 1111。", stage="output", session=OWN).allowed
    assert check.check("请发邮件到 service@xingyao.example", stage="output", facts=facts).allowed


def test_input_is_not_its_business() -> None:
    assert PiiLeakCheck().check("my friend's phone is 13987654321", stage="input").allowed
