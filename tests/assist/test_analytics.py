"""Conversation analytics: real event logs cut into archived sessions as the archiver does, then figures,
question groups, charts, the CLI against a real project archive, and the console page's self-containment."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import time
import uuid
from pathlib import Path

import numpy as np

from bot.assist.analytics import compute_analytics
from bot.assist.analytics_cli import run_analytics
from bot.assist.analytics_groups import Question, group_questions
from bot.assist.analytics_plots import write_plots
from bot.assist.archive import Archive, archived_session, split_sessions
from bot.assist.archive_sql import ArchivedSession, SqliteBackend
from bot.events import (
    ActionExecuted,
    BotUttered,
    Event,
    FeedbackGiven,
    HandedOff,
    OperatorMessage,
    SessionStarted,
    UserUttered,
)
from bot.project.init import write_starter_project
from bot.settings import Settings
from bot.types import (
    ACTION_ANSWER,
    ACTION_ASK_REPHRASE,
    ACTION_DEFAULT_FALLBACK,
    ACTION_HANDOFF,
    FALLBACK_INTENT,
    NluResult,
)

DAY = 86_400.0
DAY0 = 1_700_006_400.0  # 2023-11-15 00:00 UTC
PHONE = "13812345678"
PAGE = Path(__file__).resolve().parents[2] / "bot" / "assist" / "console" / "analytics.html"
PNG = b"\x89PNG\r\n\x1a\n"


def user(text: str, intent: str, language: str = "zh") -> UserUttered:
    nlu = NluResult(text=text, intent=intent, confidence=0.9, language=language)  # type: ignore[arg-type]
    return UserUttered(text=text, channel="web", message_id=uuid.uuid4().hex, nlu=nlu)


def act(name: str, *said: BotUttered) -> list[Event]:
    return [ActionExecuted(name=name, policy="rules"), *said]


def say(text: str, template: str | None = None) -> BotUttered:
    return BotUttered(text=text, template=template)


def archived(conversation_id: str, start: float, *events: Event) -> list[ArchivedSession]:
    """The conversation's log, a second between events, cut and archived as `archive_ended` does."""
    log = [SessionStarted(), *events]
    stamped = [dataclasses.replace(e, timestamp=start + k) for k, e in enumerate(log)]
    return [archived_session(conversation_id, part, archived_at=start + DAY) for part in split_sessions(stamped)]


def shop_sessions(base: float = DAY0) -> list[ArchivedSession]:
    """Eight sessions over three days; the comments say what each one counts towards."""
    no_answer = act(ACTION_ANSWER, say("抱歉，没有找到答案", "utter_no_answer"))
    no_answer_en = act(ACTION_ANSWER, say("Sorry, I found no answer.", "utter_no_answer"))
    handoff = act(ACTION_HANDOFF, say("正在转接", "kefu:utter_handoff"))
    return [
        # contained; one fallback (nothing in the knowledge base); CSAT 5, a thumbs up
        *archived("c1", base + 3600, user("你好", "greet"), *act("utter_greet", say("您好！")),
                  user("发票怎么开", FALLBACK_INTENT), *no_answer,
                  FeedbackGiven(rating=1, reply_id="x"), FeedbackGiven(rating=5, kind="csat")),
        # two fallbacks, then the customer asks for a human; what they say to the operator is not counted
        *archived("c2", base + 7200, user("怎么开发票", FALLBACK_INTENT),
                  *act(ACTION_ASK_REPHRASE, say("能换个说法吗？", "kefu:utter_ask_rephrase")),
                  user("能开发票吗", FALLBACK_INTENT),
                  *act(ACTION_DEFAULT_FALLBACK, say("还是没能理解", "kefu:utter_default")),
                  user("/request_human", "request_human"), HandedOff(reason="requested:request_human"), *handoff,
                  user("喂？有人吗", FALLBACK_INTENT), OperatorMessage(operator="alice", text="您好，我来帮您"),
                  FeedbackGiven(rating=2, kind="csat")),
        # English: no answer, then handed off for repeated fallbacks; a thumbs down
        *archived("c3", base + DAY, user("how do I get an invoice", FALLBACK_INTENT, "en"), *no_answer_en,
                  user("can I get an invoice?", FALLBACK_INTENT, "en"), HandedOff(reason="repeated_fallback"),
                  *act(ACTION_HANDOFF, say("Transferring you", "kefu:utter_handoff")),
                  FeedbackGiven(rating=-1, reply_id="y")),
        # safety handoff
        *archived("c4", base + DAY + 60, user("where is my order", "track_order", "en"),
                  *act("utter_track", say("It ships tomorrow.")), user("this is a scam!!", "complain", "en"),
                  HandedOff(reason="safety:anger"), *handoff),
        # understood as nlu_fallback but answered from the FAQ: contained, not unanswered; CSAT 4
        *archived("c5", base + DAY + 120, user("退货政策是什么", FALLBACK_INTENT),
                  *act(ACTION_ANSWER, say("7 天无理由退货", "knowledge:faq")), user("谢谢", "thank"),
                  *act("utter_thank", say("不客气")), FeedbackGiven(rating=4, kind="csat")),
        # the widget opened and nobody spoke: not engaged
        *archived("c6", base + DAY + 180, *act("utter_greet", say("您好！"))),
        # out of scope (declined, so unanswered, no fallback); a phone number that must arrive masked
        *archived("c7", base + 2 * DAY, user(f"给我讲个笑话，我电话 {PHONE}", "out_of_scope"),
                  *act("utter_out_of_scope", say("这个我帮不上忙"))),
        *archived("c8", base + 2 * DAY + 60, user("你们都是骗子", "complain"), HandedOff(reason="safety:abuse"),
                  *handoff),
    ]  # fmt: skip


def test_rates_reasons_csat_and_intents_from_real_archived_sessions() -> None:
    sessions = shop_sessions()
    assert len(sessions) == 8 and sessions[1].handed_off and sessions[1].user_turns == 4
    data = compute_analytics(sessions, now=DAY0 + 3 * DAY).to_json()
    assert data["sessions"] == 8 and data["engaged_sessions"] == 7 and data["user_turns"] == 14
    assert data["handoffs"] == 4
    assert data["containment_rate"] == round(3 / 7, 4) and data["handoff_rate"] == round(4 / 7, 4)
    assert data["fallback_turns"] == 4 and data["fallback_rate"] == round(4 / 14, 4)
    assert data["csat"] == {
        "average": round(11 / 3, 3),
        "count": 3,
        "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1},
    }
    assert data["thumbs"] == {"up": 1, "down": 1}
    assert data["handoff_groups"] == [{"group": "safety", "count": 2}, {"group": "repeated_fallback", "count": 1},
                                      {"group": "requested", "count": 1}]  # fmt: skip
    assert {r["reason"]: r["count"] for r in data["handoff_reasons"]} == {
        "requested:request_human": 1, "repeated_fallback": 1, "safety:anger": 1, "safety:abuse": 1
    }  # fmt: skip
    assert data["top_intents"][:2] == [{"intent": FALLBACK_INTENT, "count": 7}, {"intent": "complain", "count": 2}]
    assert sum(i["count"] for i in data["top_intents"]) == 14
    assert [i["intent"] for i in compute_analytics(sessions, top=1).to_json()["top_intents"]] == [FALLBACK_INTENT]


def test_unanswered_questions_are_grouped_as_faq_candidates() -> None:
    data = compute_analytics(shop_sessions(), now=DAY0 + 3 * DAY).to_json()
    assert data["unanswered_turns"] == 6  # not: the button, the message to the operator, the FAQ-answered one
    groups = data["unanswered"]
    assert [(g["count"], g["language"]) for g in groups] == [(3, "zh"), (2, "en"), (1, "zh")]
    assert sorted(groups[0]["examples"]) == sorted(["发票怎么开", "怎么开发票", "能开发票吗"])
    assert groups[0]["question"] in groups[0]["examples"]
    assert sorted(groups[1]["examples"]) == ["can I get an invoice?", "how do I get an invoice"]
    assert groups[2]["question"].startswith("给我讲个笑话")
    dumped = json.dumps(data, ensure_ascii=False)
    assert PHONE not in dumped and "有人吗" not in dumped and "/request_human" not in dumped


def test_lexical_grouping_keeps_different_questions_apart() -> None:
    asked = ["发票怎么开", "发票怎么开？", "怎么开发票", "能开发票吗", "怎么退货", "订单查询", "查询物流",
             "How do I get an invoice", "can I get an invoice", "can I get a refund", "where is my parcel"]  # fmt: skip
    questions = [Question(text, "en" if text.isascii() else "zh") for text in asked]
    groups = group_questions(questions)
    assert [sorted(g.examples) for g in groups[:2]] == [
        sorted(["发票怎么开", "怎么开发票", "能开发票吗"]), ["How do I get an invoice", "can I get an invoice"]
    ]  # fmt: skip
    assert groups[0].count == 4 and len(groups) == 7 and all(g.count == 1 for g in groups[2:])


def test_embedding_grouping_uses_cosine_threshold_and_the_medoid() -> None:
    vectors = {"a": [1.0, 0.0, 0.0], "b": [0.97, 0.24, 0.0], "c": [0.9, 0.44, 0.0], "d": [0.0, 0.0, 2.0]}
    seen: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        seen.append(texts)
        return np.array([vectors[t] for t in texts])

    groups = group_questions([Question(t, "en") for t in "abcdd"], embed=embed)
    assert len(seen) == 1 and sorted(seen[0]) == ["a", "b", "c", "d"]  # each distinct text embedded once
    assert [(g.question, g.count, sorted(g.examples)) for g in groups] == [("b", 3, ["a", "b", "c"]), ("d", 2, ["d"])]
    strict = group_questions([Question(t, "en") for t in "abc"], embed=embed, threshold=0.99)
    assert len(strict) == 3


def test_an_empty_archive_gives_zeros_not_errors(tmp_path: Path) -> None:
    analytics = compute_analytics([], now=DAY0)
    data = analytics.to_json()
    assert data["sessions"] == data["user_turns"] == 0
    assert data["containment_rate"] == data["handoff_rate"] == data["fallback_rate"] == 0.0
    assert data["csat"] == {"average": None, "count": 0, "distribution": {str(r): 0 for r in range(1, 6)}}
    assert data["unanswered"] == data["top_intents"] == data["handoff_reasons"] == data["by_day"] == []
    json.dumps(data)
    assert len(write_plots(analytics, tmp_path)) == 4


def test_days_are_utc_and_filled_across_the_period() -> None:
    data = compute_analytics(shop_sessions(), since=DAY0 - DAY, now=DAY0 + 3 * DAY).to_json()
    days = {d["day"]: d for d in data["by_day"]}
    assert list(days) == ["2023-11-14", "2023-11-15", "2023-11-16", "2023-11-17", "2023-11-18"]
    assert days["2023-11-14"]["sessions"] == 0 and days["2023-11-14"]["fallback_rate"] == 0.0
    first = days["2023-11-15"]
    assert (first["sessions"], first["user_turns"], first["handoffs"], first["fallbacks"]) == (2, 6, 1, 3)
    assert first["containment_rate"] == 0.5 and first["fallback_rate"] == 0.5
    assert (days["2023-11-16"]["sessions"], days["2023-11-16"]["handoffs"]) == (4, 2)
    assert data["period"] == {"since": DAY0 - DAY, "until": DAY0 + 3 * DAY}


def test_plots_are_real_pngs(tmp_path: Path) -> None:
    written = write_plots(compute_analytics(shop_sessions(), now=DAY0 + 3 * DAY), tmp_path / "charts")
    assert sorted(p.name for p in written) == ["csat.png", "handoff_reasons.png", "rates_by_day.png", "top_intents.png"]
    for path in written:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000, path.name


def test_kefu_analytics_reads_a_real_project_archive(tmp_path: Path) -> None:
    project, data_dir = tmp_path / "mybot", tmp_path / "data"
    write_starter_project(project, force=False)
    recent = time.time() - 3 * DAY  # the newest session a day ago
    asyncio.run(_save(data_dir, [*shop_sessions(recent), *archived("old", recent - 30 * DAY, user("早", "greet"))]))
    settings = Settings(data_dir=data_dir, archive_url=None)
    out = io.StringIO()
    assert run_analytics(project, days=7, as_json=True, plots=None, out=out, settings=settings) == 0
    data = json.loads(out.getvalue())
    assert data["sessions"] == 8 and data["unanswered"][0]["count"] == 3  # the month-old session is left out
    assert len(data["by_day"]) == 8 and data["period"]["since"] < recent
    table = io.StringIO()
    charts = tmp_path / "charts"
    assert run_analytics(project, days=0, as_json=False, plots=charts, out=table, settings=settings) == 0
    text = table.getvalue()
    assert re.search(r"会话 Sessions\s+9\b", text) and "转人工率 Handoff rate" in text
    assert "未解答问题 Unanswered questions" in text and "Wrote 4 chart(s)" in text
    assert len(list(charts.glob("*.png"))) == 4


async def _save(data_dir: Path, sessions: list[ArchivedSession]) -> None:
    archive = Archive(SqliteBackend(data_dir / "archive.sqlite3"))
    try:
        await archive.save(sessions)
    finally:
        await archive.close()


def test_console_page_is_self_contained() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link\b|@import|url\(", page, re.IGNORECASE)
    # the SVG namespace is a name, not a reference; nothing else may point off the page
    assert set(re.findall(r"https?://[^\s\"'`)]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert "/console/api/analytics?days=" in page and 'credentials: "same-origin"' in page
    assert "/console/login?next=/console/analytics" in page
    assert "<title>" in page and "aria-labelledby" in page and "visually-hidden" in page
