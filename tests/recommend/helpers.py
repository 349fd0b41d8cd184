"""Shared by the recommendation tests: a small bilingual knowledge folder (a few FAQ entries in zh and en and
a tiny product graph) indexed with the fast deterministic embedder, and the recommender over it."""

from __future__ import annotations

from pathlib import Path

from bot.recommend.recommender import Recommender, RecommendOptions
from knowledge.base import KnowledgeBase
from tests.knowledge.helpers import HashingEmbedder, write_graph

FAQ = """id,question,similar,answer,tags,lang
ship_zh,下单后多久能收到货？,多久能送到|快递几天到,一般 3-5 天送达。,shipping,zh
fee_zh,运费怎么收？,包邮吗|运费多少钱,满 99 元包邮。,shipping,zh
track_zh,怎么查看物流信息？,怎么查物流|快递单号在哪看,在订单详情里查看物流。,shipping,zh
return_zh,怎么申请退货？,退货流程是什么|在哪里申请售后,在我的订单里申请退货。,returns,zh
refund_zh,退款多久到账？,退款要几天|钱什么时候退回来,退款 3 个工作日内到账。,refund,zh
password_zh,忘记密码怎么办？,怎么重置密码|密码怎么找回,点击登录页的忘记密码。,account,zh
ship_en,How long does delivery take?,When will my order arrive|Delivery time,Usually 3-5 days.,shipping,en
fee_en,How much is shipping?,Is shipping free|Shipping fees,Free from 99 yuan.,shipping,en
track_en,How can I track my package?,Where is my tracking number|Track my order,See the order details.,shipping,en
return_en,How do I return an item?,What is the return process|Start a return,Request it under My orders.,returns,en
refund_en,How long does a refund take?,When do I get my money back|Refund timeline,Within 3 working days.,refund,en
password_en,I forgot my password,Reset my password|Password recovery,Use the forgot-password link.,account,en
"""


def write_knowledge(folder: Path) -> Path:
    """The small knowledge folder: FAQ.csv above and the product graph of the knowledge tests."""
    write_graph(folder)
    (folder / "faq.csv").write_text(FAQ, encoding="utf-8")
    return folder


def small_recommender(tmp_path: Path, options: RecommendOptions | None = None) -> Recommender:
    knowledge = KnowledgeBase(write_knowledge(tmp_path / "knowledge"), HashingEmbedder(), index_dir=tmp_path / "index")
    knowledge.reload()
    recommender = Recommender(knowledge, options or RecommendOptions(), cache_dir=tmp_path / "index")
    recommender.warm_up()
    return recommender
