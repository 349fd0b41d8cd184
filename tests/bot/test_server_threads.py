"""The serving process's thread settings for tensors and vector search."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import faiss
import torch

from bot.server import one_thread_for_tensors


def _threads() -> tuple[int, int]:
    return torch.get_num_threads(), faiss.omp_get_max_threads()


def test_one_thread_for_tensors_in_the_calling_thread_and_in_threads_it_initialises() -> None:
    before = _threads()
    try:
        one_thread_for_tensors()
        assert _threads() == (1, 1)
        with ThreadPoolExecutor(1, initializer=one_thread_for_tensors) as pool:
            assert pool.submit(_threads).result() == (1, 1)  # OpenMP's setting is per thread
    finally:
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])
