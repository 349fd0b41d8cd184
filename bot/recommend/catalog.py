"""What can be recommended: the FAQ's questions, and a question per (entity, relation) of the knowledge graph,
each under the id of the fact that answers it, so an answer's fact ids say which question it answered.

A graph question is the relation's `question_zh` / `question_en` (relations.csv or graph.json), or else a
generic one ("What is the warranty of the X1 Pro?", "星耀X1 Pro的保修期是什么？"). Either way its id is the
fact id `kg:S|r`, so rewording a question keeps what was learned about it."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from bot.types import Language
from knowledge.faq import FaqEntry
from knowledge.graph import KgEntity, KgRelation, KnowledgeGraph

# For a relation that declares no question of its own (`question_zh` / `question_en`).
GENERIC_QUESTIONS: Mapping[Language, str] = {
    "zh": "{subject}的{relation}是什么？",
    "en": "What is the {relation} of the {subject}?",
}


@dataclass(frozen=True, slots=True)
class Question:
    """A question the bot answers well: `id` is its answer's fact id (an FAQ id or `kg:S|r`)."""

    id: str
    text: str
    language: Language
    tags: tuple[str, ...] = ()


class QuestionCatalog:
    """The recommendable questions by (id, language), and the way back from a question's text to its id."""

    def __init__(self, questions: Iterable[Question]) -> None:
        self._by_key: dict[tuple[str, Language], Question] = {}
        self._by_text: dict[tuple[str, Language], str] = {}
        for question in questions:
            self._by_key.setdefault((question.id, question.language), question)
            self._by_text.setdefault((normalized(question.text), question.language), question.id)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Question]:
        return iter(self._by_key.values())

    def get(self, item: str, language: Language) -> Question | None:
        return self._by_key.get((item, language))

    def item_of(self, text: str, language: Language) -> str | None:
        """The id of the question written exactly as `text` (up to case, width and spaces), if any."""
        return self._by_text.get((normalized(text), language))

    def in_language(self, language: Language) -> list[Question]:
        return [q for (_, lang), q in self._by_key.items() if lang == language]


def catalog_of(faq: Mapping[str, FaqEntry], graph: KnowledgeGraph) -> QuestionCatalog:
    """Every FAQ entry's question, and one question per subject and relation of the graph in both languages."""
    questions = [Question(e.id, e.question, e.lang, e.tags) for e in faq.values()]
    for subject, relation in dict.fromkeys((t.subject, t.relation) for t in graph.triples):
        entity, kind = graph.entities.get(subject), graph.relations.get(relation)
        if entity is None or kind is None:
            continue
        for language in ("zh", "en"):
            text = graph_question(entity, kind, language)
            questions.append(Question(f"kg:{subject}|{relation}", text, language, (entity.type,)))
    return QuestionCatalog(questions)


def graph_question(entity: KgEntity, relation: KgRelation, language: Language) -> str:
    """How a customer asks for `relation` of `entity`: "Do you have the X1 Pro in stock?", "星耀X1 Pro有货吗？"."""
    label, declared = relation.name(language), relation.question(language)
    if not declared and language == "en" and not label[1:2].isupper():  # mid-sentence; "USB ports" stays
        label = label[:1].lower() + label[1:]
    return (declared or GENERIC_QUESTIONS[language]).format(subject=entity.name(language), relation=label)


def normalized(text: str) -> str:
    """Text as compared for clicks: NFKC (full-width digits and letters), case-folded, without spaces."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())
