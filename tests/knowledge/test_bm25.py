"""Bm25Index and search_tokens on bilingual texts, and reciprocal rank fusion."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest

from bot.errors import ProjectError
from knowledge.bm25 import BM25_FILE, Bm25Index, search_tokens, stem
from knowledge.fusion import reciprocal_rank_fusion

DOCS = {
    "return": "退货政策：收到商品7天内可以申请退货，请保留包装。",
    "shipping": "我们的快递一般3天送达，偏远地区5天。",
    "refund": "A refund is issued to the original payment method within 5 business days.",
    "invoice": "发票 invoice: 在订单页面申请电子发票。",
    "password": "Forgot your password? Reset it from the login page.",
}


def docs_index() -> Bm25Index:
    index = Bm25Index()
    index.add(list(DOCS), list(DOCS.values()))
    return index


def ranked(index: Bm25Index, query: str, k: int = 5) -> list[str]:
    return [doc_id for doc_id, _ in index.search(query, k)]


def test_tokens_fold_width_case_and_drop_punctuation_and_stop_words() -> None:
    assert search_tokens("怎么退货？") == ["怎么", "退货"]
    assert search_tokens("ＲＥＦＵＮＤ ５０元!") == ["refund", "50", "元"]
    assert search_tokens("The refunds of my orders, please...") == ["refund", "order", "pleas"]
    assert "的" not in search_tokens("我的订单")
    assert search_tokens("iPhone15 退货") == ["iphone15", "退货"]


def test_search_mode_adds_words_inside_long_words() -> None:
    assert {"退货", "政策"} <= set(search_tokens("退货政策"))


@pytest.mark.parametrize(
    ("words", "root"),
    [
        (["refund", "refunds", "refunded", "refunding"], "refund"),
        (["ship", "ships", "shipped", "shipping"], "ship"),
        (["charge", "charges", "charged", "charging"], "charg"),
        (["policy", "policies"], "policy"),
        (["box", "boxes"], "box"),
        (["address", "addresses"], "address"),
    ],
)
def test_stemmer_joins_inflections(words: list[str], root: str) -> None:
    assert {stem(word) for word in words} == {root}


def test_stemmer_leaves_short_words_numbers_and_status_alone() -> None:
    assert [stem(word) for word in ("bus", "is", "status", "4g5s", "this")] == ["bus", "is", "status", "4g5s", "this"]


def test_bilingual_queries_find_their_document() -> None:
    index = docs_index()
    assert ranked(index, "怎么退货")[0] == "return"
    assert ranked(index, "refunds")[0] == "refund"
    assert ranked(index, "ＲＥＦＵＮＤ")[0] == "refund"
    assert ranked(index, "电子发票怎么开")[0] == "invoice"
    assert ranked(index, "how do I reset my password")[0] == "password"
    assert index.search("完全无关的词语 zebra", 5) == []
    assert index.search("退货", 0) == []


def test_scores_follow_the_bm25_formula() -> None:
    index = Bm25Index(k1=1.2, b=0.75)
    index.add(["a", "b", "c"], ["apple apple pear", "pear plum", "plum kiwi fig grape"])
    lengths, average = {"a": 3, "b": 2}, 3.0
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # "pear" is in two of three documents

    def expected(tf: int, length: int) -> float:
        return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * length / average))

    hits = dict(index.search("pear", 5))
    assert hits == pytest.approx({"a": expected(1, lengths["a"]), "b": expected(1, lengths["b"])})
    assert list(hits) == ["b", "a"]  # the shorter document wins at equal frequency


def test_top_k_matches_brute_force_scoring() -> None:
    rng = random.Random(5)
    docs = [[f"w{rng.randint(1, 40)}" for _ in range(rng.randint(1, 12))] for _ in range(300)]
    index = Bm25Index()
    index.add([f"d{i}" for i in range(len(docs))], [" ".join(words) for words in docs])
    average = sum(map(len, docs)) / len(docs)
    df = Counter(word for doc in docs for word in set(doc))

    def score(words: list[str], query: list[str]) -> float:
        total = 0.0
        for term in set(query):
            tf = words.count(term)
            idf = math.log(1 + (len(docs) - df[term] + 0.5) / (df[term] + 0.5))
            total += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(words) / average)) if tf else 0.0
        return total

    for _ in range(20):
        query = [f"w{rng.randint(1, 45)}" for _ in range(rng.randint(1, 4))]
        scored = [(f"d{i}", score(words, query)) for i, words in enumerate(docs)]
        expected = sorted((pair for pair in scored if pair[1] > 0), key=lambda pair: -pair[1])[:10]
        hits = index.search(" ".join(query), 10)
        assert [round(value, 9) for _, value in hits] == [round(value, 9) for _, value in expected]
        assert dict(hits) == pytest.approx(dict(expected))  # the same documents, ties broken by insertion order


def test_incremental_updates_match_a_fresh_build() -> None:
    index = docs_index()
    index.add(["return"], ["退货需要在15天内申请"])  # the same id replaces the document
    index.add(["gift"], ["礼品卡 gift cards cannot be refunded"])
    assert index.remove(["password", "missing"]) == 1
    fresh = Bm25Index()
    texts = {**DOCS, "return": "退货需要在15天内申请", "gift": "礼品卡 gift cards cannot be refunded"}
    del texts["password"]
    fresh.add(list(texts), list(texts.values()))
    assert len(index) == len(fresh) == 5
    for query in ("退货", "refund", "password reset", "gift 发票"):
        assert dict(index.search(query, 5)) == pytest.approx(dict(fresh.search(query, 5)))
    assert ranked(index, "password") == []


def test_replacing_documents_many_times_keeps_the_index_compact() -> None:
    index = Bm25Index()
    for round_ in range(150):
        index.add([f"d{i}" for i in range(10)], [f"refund order {i} round{round_}" for i in range(10)])
    assert len(index) == 10
    assert len(index._ids) <= 10 + 1024 + 10  # removed slots are renumbered away
    assert ranked(index, "round149 3", 10) == ["d3", *(f"d{i}" for i in range(10) if i != 3)]
    assert ranked(index, "round0") == []


def test_allowed_filter_returns_only_accepted_ids() -> None:
    index = Bm25Index()
    index.add([f"d{i}" for i in range(100)], [f"refund case {i}" for i in range(100)])
    hits = index.search("refund", 3, allowed=lambda doc_id: doc_id.endswith("7"))
    assert [doc_id for doc_id, _ in hits] == ["d7", "d17", "d27"]  # equal scores keep insertion order
    assert index.search("refund", 3, allowed=lambda _: False) == []


def test_save_load_roundtrip_after_removals(tmp_path: Path) -> None:
    index = docs_index()
    index.remove({"shipping"})
    index.save(tmp_path)
    loaded = Bm25Index.load(tmp_path)
    assert len(loaded) == 4
    for query in ("怎么退货", "refunds", "发票", "快递"):
        assert loaded.search(query, 5) == index.search(query, 5)
    loaded.add(["shipping"], ["快递 shipping takes 3 days"])
    assert ranked(loaded, "shipping")[0] == "shipping"
    assert json.loads((tmp_path / BM25_FILE).read_text(encoding="utf-8"))["format"] == 1


def test_load_rejects_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="delete the folder"):
        Bm25Index.load(tmp_path / "nowhere")
    (tmp_path / BM25_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ProjectError, match="cannot read"):
        Bm25Index.load(tmp_path)
    docs_index().save(tmp_path)
    payload = json.loads((tmp_path / BM25_FILE).read_text(encoding="utf-8"))
    payload["lengths"][0] += 1
    (tmp_path / BM25_FILE).write_text(json.dumps(payload), encoding="utf-8")
    with pytest.raises(ProjectError, match="malformed"):
        Bm25Index.load(tmp_path)
    (tmp_path / BM25_FILE).write_text(json.dumps({**payload, "postings": {"x": [[99], [1]]}}), encoding="utf-8")
    with pytest.raises(ProjectError, match="malformed"):
        Bm25Index.load(tmp_path)


def test_argument_errors() -> None:
    index = Bm25Index()
    with pytest.raises(ValueError, match="2 ids for 1 texts"):
        index.add(["a", "b"], ["x"])
    with pytest.raises(TypeError, match="not one string"):
        index.remove("a")
    with pytest.raises(ValueError, match="k1"):
        Bm25Index(b=2.0)


# --- reciprocal rank fusion ---------------------------------------------------------------------------------


def test_fusion_adds_up_rankings() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]], k=60)
    assert [item for item, _ in fused] == ["b", "a", "d", "c"]
    assert dict(fused)["b"] == pytest.approx(1 / 62 + 1 / 61)


def test_fusion_breaks_ties_by_best_rank_then_id() -> None:
    # x: ranks 1 and 3; y: ranks 3 and 1 (equal sums, equal best rank) -> by id; z: ranks 2 and 2
    fused = reciprocal_rank_fusion([["y", "z", "x"], ["x", "z", "y"]], k=0)
    assert [item for item, _ in fused] == ["x", "y", "z"]
    assert reciprocal_rank_fusion([["b"], ["a"]]) == reciprocal_rank_fusion([["a"], ["b"]])


def test_fusion_weights_and_repeats() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], weights=[3.0, 1.0], k=1)
    assert [item for item, _ in fused] == ["a", "b"]
    repeated = reciprocal_rank_fusion([["a", "a", "b"]], k=0)  # a repeat counts at its best rank only
    assert repeated == [("a", 1.0), ("b", pytest.approx(1 / 3))]
    assert reciprocal_rank_fusion([]) == []
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])
    with pytest.raises(TypeError, match="not one string"):
        reciprocal_rank_fusion(["abc"])
