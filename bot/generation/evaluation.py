"""Grounded-answering evaluation: faithfulness, answer relevance and don't-know rates of the whole bot.

Each question is the first message of a fresh conversation through `Bot.handle`, so NLU, policies, knowledge
and generator are scored as a customer meets them. The queries file is a CSV with the header
`question,lang,answerable,expected`: `answerable` is 1 or 0; `expected` (optional) lists, separated by `|`,
fact ids the answer should cite (a graph fact whole: `kg:x1_pro|price`) or phrases it should contain.

Faithfulness covers the replies that rest on knowledge (a quoted fact or a generated answer); scripted
responses (a greeting, a form's question) claim nothing from the facts and are not scored.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bot.errors import ProjectError
from bot.generation.rerank import content_tokens
from bot.nlu.features import detect_language
from bot.protocols import Embedder
from bot.runtime import Bot
from bot.types import Fact, Language, Message, Reply
from knowledge.tables import read_table, split_list
from safety.grounding import numbers

# e5 cosines are compressed: unrelated shop sentences still score 0.75-0.85, paraphrases of a fact 0.88+
SUPPORT_COSINE = 0.88
RELEVANT_COSINE = 0.85
MIN_RECALL = 0.5
MAX_LISTED = 20

# after 。！？!? anywhere, after a full stop only before white space (so 6.7 and 3.5 stay whole), at newlines
_SENTENCE_END = re.compile(r"(?<=[。！？!?])|(?<=\.)(?=\s)|\n")
_DONT_KNOW = re.compile(
    r"not sure|don't know|do not know|couldn't find|could not find|can't find|cannot find|no information|"
    r"can't help|cannot help|can't answer|cannot answer|unable to (?:help|answer)|didn't (?:quite )?(?:get|understand)"
    r"|couldn't understand|不确定|不知道|不清楚|没有找到|没找到|帮不上|无法回答|无法协助|没太明白|没能理解",
    re.IGNORECASE,
)
_OFFER_HUMAN = re.compile(r"human agent|a human|live agent|real person|人工|转接", re.IGNORECASE)
# what the bot says when it has no answer: kefu's fallbacks and the domain responses of the same name
IDK_TEMPLATES = frozenset(
    {"utter_no_answer", "utter_out_of_scope", "utter_default", "utter_ask_rephrase", "utter_offer_human",
     "utter_handoff"}
)  # fmt: skip

Verdict = Literal["supported", "unsupported", "excluded"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    support_cosine: float = SUPPORT_COSINE  # a sentence this close to a fact (e5, passage to passage) is supported
    relevance_cosine: float = RELEVANT_COSINE  # an answer this close to its question counts as relevant
    min_recall: float = MIN_RECALL  # share of a sentence's content tokens found in the facts


@dataclass(frozen=True, slots=True)
class GenerationQuery:
    question: str
    lang: Language
    answerable: bool
    expected: str
    line: int


@dataclass(frozen=True, slots=True)
class SentenceCheck:
    text: str
    verdict: Verdict
    reason: str = ""
    recall: float | None = None
    cosine: float | None = None


@dataclass(frozen=True, slots=True)
class QueryResult:
    query: GenerationQuery
    answer: str
    templates: tuple[str, ...]
    cited: tuple[str, ...]
    said_idk: bool
    from_knowledge: bool  # a reply quoted a fact or was generated from facts
    expected_hit: bool | None  # None: nothing expected, or not answerable
    relevance: float | None  # None unless answerable and answered
    sentences: tuple[SentenceCheck, ...]
    latency_ms: float


@dataclass(frozen=True, slots=True)
class GenerationScores:
    n: int
    faithfulness: float | None
    sentences: int  # sentences judged (supported + unsupported)
    answer_relevance: float | None
    relevant_share: float | None
    idk_rate_unanswerable: float | None
    answered_rate_unanswerable: float | None  # unanswerable questions answered from knowledge anyway
    false_idk_rate: float | None
    answered_with_expected: float | None
    latency_p50_ms: float
    latency_p95_ms: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GenerationReport:
    overall: GenerationScores
    per_language: dict[str, GenerationScores]
    templates: dict[str, int]
    results: tuple[QueryResult, ...]
    thresholds: Thresholds

    def to_json(self) -> dict[str, Any]:
        return {
            **self.overall.to_json(),
            "n_queries": self.overall.n,
            "per_language": {lang: s.to_json() for lang, s in sorted(self.per_language.items())},
            "templates": dict(sorted(self.templates.items())),
            "thresholds": asdict(self.thresholds),
            "unsupported": [
                {"question": r.query.question, "sentence": s.text, "reason": s.reason} for r, s in unsupported(self)
            ][:MAX_LISTED],
            "misses": [_miss_json(r) for r in misses(self)][:MAX_LISTED],
        }


def load_generation_queries(path: Path) -> list[GenerationQuery]:
    """The queries of a CSV file; a bad row raises ProjectError naming its line."""
    if not path.is_file():
        raise ProjectError(
            "no such file; write a CSV with the header question,lang,answerable,expected", path=str(path)
        )
    queries = []
    for row in read_table(path, required=("question", "answerable"), optional=("lang", "expected")):
        question, answerable, lang = row.get("question"), row.get("answerable").lower(), row.get("lang").lower()
        if not question:
            raise ProjectError("the question is empty", path=str(path), line=row.line)
        if answerable not in ("1", "0", "true", "false"):
            raise ProjectError(f"answerable must be 1 or 0, not {answerable!r}", path=str(path), line=row.line)
        if lang not in ("", "zh", "en"):
            raise ProjectError(
                f"unknown lang {lang!r}; use zh or en (or leave it empty)", path=str(path), line=row.line
            )
        language: Language = detect_language(question) if not lang else ("zh" if lang == "zh" else "en")
        queries.append(GenerationQuery(question, language, answerable in ("1", "true"), row.get("expected"), row.line))
    if not queries:
        raise ProjectError("no queries below the header", path=str(path))
    return queries


async def evaluate_generation(
    bot: Bot, queries: Sequence[GenerationQuery], embedder: Embedder, *, thresholds: Thresholds = Thresholds()
) -> GenerationReport:
    """Ask `bot` every query in a conversation of its own and score the answers."""
    results = [await _ask(bot, query, embedder, thresholds) for query in queries]
    by_language: dict[str, list[QueryResult]] = defaultdict(list)
    for result in results:
        by_language[result.query.lang].append(result)
    templates = Counter(template for result in results for template in result.templates)
    return GenerationReport(
        _scores(results, thresholds),
        {lang: _scores(group, thresholds) for lang, group in by_language.items()},
        dict(templates),
        tuple(results),
        thresholds,
    )


async def _ask(bot: Bot, query: GenerationQuery, embedder: Embedder, thresholds: Thresholds) -> QueryResult:
    conversation = f"eval-{uuid.uuid4().hex[:12]}"
    message = Message(conversation, "eval", conversation, uuid.uuid4().hex, query.question, time.time())
    started = time.perf_counter()
    answer = await bot.handle(message)
    latency_ms = (time.perf_counter() - started) * 1000
    replies = answer.replies
    facts = answer.trace.facts if answer.trace is not None else ()
    text = "\n".join(reply.text for reply in replies)
    cited = tuple(dict.fromkeys(fact_id for reply in replies for fact_id in reply.fact_ids))
    grounded = [reply.text for reply in replies if _rests_on_knowledge(reply)]
    said_idk = says_dont_know(replies)
    relevance = None
    if query.answerable and not said_idk and text.strip():
        relevance = _cosine(embedder.embed_queries([query.question])[0], embedder.embed_passages([text])[0])
    hit = matches_expected(query.expected, text, cited) if query.answerable and query.expected else None
    return QueryResult(
        query,
        text,
        tuple(reply.template or "none" for reply in replies),
        cited,
        said_idk,
        bool(grounded),
        hit,
        relevance,
        check_sentences("\n".join(grounded), facts, embedder, thresholds=thresholds),
        latency_ms,
    )


def _rests_on_knowledge(reply: Reply) -> bool:
    template = reply.template or ""
    return bool(reply.fact_ids) or template.startswith(("knowledge:", "generated"))


# --- sentences and their support ---


def split_sentences(text: str) -> list[str]:
    """Sentences at 。！？!? and newlines, and at a full stop followed by white space."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def is_idk_sentence(sentence: str) -> bool:
    """A refusal, an "I don't know" or an offer of a human agent: no claim to check against the facts."""
    normalised = sentence.replace("\u2019", "'")
    return bool(_DONT_KNOW.search(normalised) or _OFFER_HUMAN.search(normalised))


def check_sentences(
    answer: str, facts: Sequence[Fact], embedder: Embedder, *, thresholds: Thresholds = Thresholds()
) -> tuple[SentenceCheck, ...]:
    """Judge each sentence of `answer`: every number must be in the facts, and then either enough of its
    content tokens are (recall), or it is close enough in meaning to one fact (e5 cosine)."""
    known_numbers = set().union(*(numbers(fact.text) for fact in facts)) if facts else set()
    known_tokens = set().union(*(content_tokens(fact.text) for fact in facts)) if facts else set()
    judged = [_by_tokens(s, known_numbers, known_tokens, thresholds) for s in split_sentences(answer)]
    checks = [check for check, _ in judged]
    pending = [i for i, (_, needs_cosine) in enumerate(judged) if needs_cosine]
    if pending and facts:
        sentence_vectors = embedder.embed_passages([checks[i].text for i in pending])
        fact_vectors = embedder.embed_passages([fact.text for fact in facts])
        best = np.asarray(sentence_vectors @ fact_vectors.T).max(axis=1)
        for i, cosine in zip(pending, best, strict=True):
            supported = float(cosine) >= thresholds.support_cosine
            reason = "" if supported else f"{checks[i].reason}; e5 cosine {cosine:.3f} to the closest fact"
            checks[i] = SentenceCheck(checks[i].text, "supported" if supported else "unsupported", reason,
                                      checks[i].recall, float(cosine))  # fmt: skip
    return tuple(checks)


def _by_tokens(
    sentence: str, known_numbers: set[str], known_tokens: set[str], thresholds: Thresholds
) -> tuple[SentenceCheck, bool]:
    """The verdict numbers and tokens give, and whether the embedding may still support the sentence."""
    if is_idk_sentence(sentence):
        return SentenceCheck(sentence, "excluded", "refusal or offer of a human"), False
    tokens, stated = content_tokens(sentence), numbers(sentence)
    if not tokens and not stated:
        return SentenceCheck(sentence, "excluded", "no content to check"), False
    invented = sorted(stated - known_numbers)
    if invented:  # no paraphrase makes up for a wrong price or duration
        return SentenceCheck(sentence, "unsupported", f"numbers not in the facts: {', '.join(invented)}"), False
    recall = len(tokens & known_tokens) / len(tokens) if tokens else 1.0
    if recall >= thresholds.min_recall:
        return SentenceCheck(sentence, "supported", recall=recall), False
    return SentenceCheck(sentence, "unsupported", f"token recall {recall:.2f}", recall=recall), True


def faithfulness(checks: Iterable[SentenceCheck]) -> float | None:
    """Supported sentences over judged ones (excluded sentences do not count); None when none was judged."""
    verdicts = [check.verdict for check in checks if check.verdict != "excluded"]
    return verdicts.count("supported") / len(verdicts) if verdicts else None


# --- don't-know and expected answers ---


def says_dont_know(replies: Sequence[Reply]) -> bool:
    """Whether the bot declined: no reply, a fallback/no-answer/refusal template, a handoff, or a text that
    says it does not know or only offers a human. A quoted fact is an answer even when it mentions an agent."""
    if not replies:
        return True
    for reply in replies:
        template = (reply.template or "").removeprefix("kefu:")
        if reply.handoff or template in IDK_TEMPLATES or template.startswith("refusal:"):
            return True
        if template.startswith("knowledge:"):
            continue
        sentences = [s.replace("\u2019", "'") for s in split_sentences(reply.text)]
        if any(_DONT_KNOW.search(s) for s in sentences) or (sentences and all(map(is_idk_sentence, sentences))):
            return True
    return False


def matches_expected(expected: str, answer: str, cited: Collection[str]) -> bool:
    """Whether the answer cites one of the `expected` fact ids or contains one of its phrases."""
    ids, phrases = _expected_items(expected)
    bounded = f"|{expected}|"
    for fact_id in cited:
        graph_id = fact_id.removeprefix("kg:")  # also `x1_pro|price`, as the knowledge queries name graph facts
        if fact_id in ids or graph_id in ids or f"|{graph_id}|" in bounded:
            return True
        if fact_id.startswith("doc:") and any(fact_id.startswith(f"{item}#") for item in ids):
            return True
    lowered = answer.lower()
    return any(phrase.lower() in lowered for phrase in phrases)


def _expected_items(expected: str) -> tuple[set[str], list[str]]:
    """(fact ids, phrases): `kg:` and `doc:` items are ids, and so are the relation names after a `kg:` subject;
    an item is also tried as an id whatever it looks like (FAQ ids have no prefix)."""
    items = split_list(expected)
    ids: set[str] = set(items)
    phrases: list[str] = []
    graph: list[str] | None = None
    for item in items:
        if item.startswith("kg:"):
            graph = [item]
        elif graph is not None and re.fullmatch(r"[a-z0-9_]+", item):
            graph.append(item)
        else:
            graph = None
            if not item.startswith("doc:"):
                phrases.append(item)
        if graph is not None:
            ids |= {"|".join(graph), "|".join(graph).removeprefix("kg:")}
    return ids, phrases


# --- scores ---


def _scores(results: Sequence[QueryResult], thresholds: Thresholds) -> GenerationScores:
    answerable = [r for r in results if r.query.answerable]
    unanswerable = [r for r in results if not r.query.answerable]
    relevances = [r.relevance for r in answerable if r.relevance is not None]
    hits = [r.expected_hit for r in answerable if r.expected_hit is not None]
    checks = [check for r in results for check in r.sentences]
    latencies = [r.latency_ms for r in results] or [0.0]
    return GenerationScores(
        n=len(results),
        faithfulness=faithfulness(checks),
        sentences=sum(check.verdict != "excluded" for check in checks),
        answer_relevance=_mean(relevances),
        relevant_share=_mean([float(c >= thresholds.relevance_cosine) for c in relevances]),
        idk_rate_unanswerable=_mean([float(r.said_idk) for r in unanswerable]),
        answered_rate_unanswerable=_mean([float(r.from_knowledge) for r in unanswerable]),
        false_idk_rate=_mean([float(r.said_idk) for r in answerable]),
        answered_with_expected=_mean([float(hit) for hit in hits]),
        latency_p50_ms=float(np.percentile(latencies, 50)),
        latency_p95_ms=float(np.percentile(latencies, 95)),
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    # the embedder's vectors are L2-normalised; dividing anyway keeps another Embedder honest
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))


def unsupported(report: GenerationReport) -> list[tuple[QueryResult, SentenceCheck]]:
    return [(r, s) for r in report.results for s in r.sentences if s.verdict == "unsupported"]


def misses(report: GenerationReport) -> list[QueryResult]:
    """Answerable questions the bot declined or answered without the expected fact; unanswerable ones it answered."""
    return [
        r
        for r in report.results
        if (r.query.answerable and (r.said_idk or r.expected_hit is False))
        or (not r.query.answerable and not r.said_idk)
    ]


def _miss_json(result: QueryResult) -> dict[str, Any]:
    return {
        "question": result.query.question,
        "answerable": result.query.answerable,
        "expected": result.query.expected,
        "answer": result.answer,
        "templates": list(result.templates),
        "cited": list(result.cited),
    }


def format_generation_report(report: GenerationReport) -> str:
    """A short table for the terminal, then the unsupported sentences and the misses."""
    head = ("queries", "faithful", "relevance", "relevant", "idk unans", "ans unans", "false idk", "expected")
    lines = [f"{'':5}" + "".join(f"{name:>10}" for name in head) + f"{'p50 ms':>8}{'p95 ms':>8}"]
    for name, s in [("all", report.overall), *sorted(report.per_language.items())]:
        cells = (s.faithfulness, s.answer_relevance, s.relevant_share, s.idk_rate_unanswerable,
                 s.answered_rate_unanswerable, s.false_idk_rate, s.answered_with_expected)  # fmt: skip
        figures = "".join(f"{'-' if v is None else f'{v:.3f}':>10}" for v in cells)
        lines.append(f"{name:5}{s.n:>10}{figures}{s.latency_p50_ms:>8.0f}{s.latency_p95_ms:>8.0f}")
    lines.append(
        f"(relevant: question-answer e5 cosine >= {report.thresholds.relevance_cosine}; idk/ans unans: unanswerable "
        "questions declined / answered from knowledge; expected: answerable ones citing or saying the expected)"
    )
    lines.append("templates: " + ", ".join(f"{t} {n}" for t, n in sorted(report.templates.items())))
    found = unsupported(report)
    if found:
        lines.append("\nunsupported sentences:")
        lines.extend(f"  {r.query.question!r}: {s.text!r} ({s.reason})" for r, s in found[:MAX_LISTED])
    missed = misses(report)
    if missed:
        lines.append("\nmisses (answerable declined or without the expected answer; unanswerable answered):")
        for r in missed[:MAX_LISTED]:
            lines.append(f"  {r.query.question!r} [{', '.join(r.templates)}]: {r.answer[:100]!r}")
    return "\n".join(lines)
