"""The conversations file of `kefu test recommend` (its errors name the line and the fix), questions resolved
to items, and archived sessions turned into conversations."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.events import BotUttered, QuestionsRecommended, UserUttered, event_to_dict
from bot.recommend.conversations import ItemFinder, archived_conversations, read_conversations, resolve
from bot.recommend.evaluation import Conversation
from bot.recommend.recommender import Recommender
from tests.recommend.helpers import small_recommender


@pytest.fixture(scope="module")
def recommender(tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    return small_recommender(tmp_path_factory.mktemp("recommend"))


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conversations.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_reads_as_conversations_with_the_line_of_each_question(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        "conversations:\n"
        "  - lang: zh\n"
        "    questions: [下单后多久能收到货？, 运费怎么收？, ship_zh]\n"
        "  - lang: en\n"
        "    questions:\n"
        "      - How much is shipping?\n"
        "      - 42\n",
    )
    first, second = read_conversations(path)
    assert (first.language, first.questions, first.lines) == (
        "zh",
        ("下单后多久能收到货？", "运费怎么收？", "ship_zh"),
        (3, 3, 3),
    )
    assert (second.language, second.questions, second.lines) == ("en", ("How much is shipping?", "42"), (6, 7))


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("stories: []\n", 1, "no `conversations:` list"),
        ("conversations:\n  lang: zh\n", 2, "must be a list"),
        ("conversations:\n  - questions: [a]\n", 2, "`lang:` must be zh or en, not an empty value"),
        ("conversations:\n  - lang: fr\n    questions: [a]\n", 2, "not `fr`"),
        ("conversations:\n  - lang: zh\n    question: [a]\n", 3, "unknown key `question`"),
        ("conversations:\n  - lang: zh\n    questions: []\n", 2, "needs questions"),
        ("conversations:\n  - lang: en\n    questions: [X1 Pro: price, b]\n", 3, "quote a question"),
        ("conversations:\n  - lang: en\n    questions:\n      - ''\n", 4, "an empty question"),
        ("conversations:\n  - lang: zh\n    questions: [a, [b]]\n", 3, "must be text"),
        ("conversations:\n  - lang: zh\n\tquestions: [a]\n", 3, "indent with spaces"),
        ("conversations:\n  - lang: en\n    questions: [How do I pay?]\n", 3, "quote a question holding `?`"),
    ],
)
def test_a_malformed_file_names_the_line_and_the_fix(tmp_path: Path, text: str, line: int, says: str) -> None:
    path = written(tmp_path, text)
    with pytest.raises(ProjectError) as raised:
        read_conversations(path)
    assert raised.value.path == str(path) and raised.value.line == line
    assert says in str(raised.value)


def test_questions_resolve_by_id_by_exact_text_and_by_search(recommender: Recommender, tmp_path: Path) -> None:
    finder = ItemFinder(recommender.catalog, recommender.knowledge, min_score=0.6)
    at = {"path": tmp_path / "c.yml", "line": 7}
    assert finder.item("fee_zh", "zh", **at) == "fee_zh"
    assert finder.item("kg:x1_pro|price", "en", **at) == "kg:x1_pro|price"
    assert finder.item("ＨＯＷ much is  SHIPPING?", "en", **at) == "fee_en"  # width, case and spaces
    assert finder.item("What is the price of the X1 Pro?", "en", **at) == "kg:x1_pro|price"  # a graph question's text
    assert finder.item("退款要几天", "zh", **at) == "refund_zh"  # a paraphrase, found by the search
    assert finder.item("qqq zzz", "en", **at) is None


def test_an_item_id_of_the_other_language_or_no_item_is_an_error_at_its_line(
    recommender: Recommender, tmp_path: Path
) -> None:
    finder = ItemFinder(recommender.catalog, recommender.knowledge, min_score=0.6)
    path = tmp_path / "c.yml"
    with pytest.raises(
        ProjectError, match=r"c.yml:4: `fee_en` is a question in en, but this conversation is `lang: zh`"
    ):
        finder.item("fee_en", "zh", path=path, line=4)
    with pytest.raises(ProjectError, match=r"c.yml:5: no FAQ entry or graph question has the id `faq_ship_99_zh`"):
        finder.item("faq_ship_99_zh", "zh", path=path, line=5)


def test_unresolved_questions_are_listed_and_left_out_of_their_conversation(
    recommender: Recommender, tmp_path: Path
) -> None:
    path = written(tmp_path, "conversations:\n  - lang: en\n    questions: [Is shipping free, qqq zzz, refund_en]\n")
    embedded: list[str] = []
    finder = ItemFinder(recommender.catalog, recommender.knowledge, min_score=0.6, embed=embedded.extend)
    conversations, unresolved = resolve(read_conversations(path), finder, path=path)
    assert conversations == [Conversation("en", ("fee_en", "refund_en"))]
    assert unresolved == [f"{path}:3: qqq zzz"]
    assert embedded == ["Is shipping free", "qqq zzz"], "only what needs a search is embedded ahead"


def test_archived_sessions_give_the_item_each_turn_answered(recommender: Recommender) -> None:
    events = [
        UserUttered(text="How much is shipping?"),
        BotUttered(text="Free from 99 yuan.", template="knowledge:faq", fact_ids=("fee_en", "ship_en")),
        BotUttered(text="Anything else?", fact_ids=("track_en",)),  # the same turn: its first answer counts
        QuestionsRecommended(context="fee_en", items=("ship_en",), language="en"),
        UserUttered(text="hello"),
        BotUttered(text="Hi!", template="utter_greet"),
        UserUttered(text="Where is chapter 2?"),
        BotUttered(text="...", template="knowledge:doc", fact_ids=("doc:manual.md#2",)),
        UserUttered(text="Refund timeline"),
        BotUttered(text="Within 3 working days.", template="knowledge:faq", fact_ids=("refund_en",)),
    ]
    sessions = [("zh", [event_to_dict(e) for e in events]), ("zh", [event_to_dict(UserUttered(text="hi"))])]
    conversations, left_out = archived_conversations(sessions, recommender.catalog)
    assert conversations == [Conversation("en", ("fee_en", "refund_en"))]  # the language recommendations used
    assert left_out == ["doc:manual.md#2"]
