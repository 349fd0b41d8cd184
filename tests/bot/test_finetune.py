"""Fine-tuning the packaged SmolLM2 with LoRA on a tiny exported data set: it learns a sign-off it never used."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from bot.errors import ConfigError, GenerationError
from bot.generation.finetune import FinetuneConfig, FinetuneReport, finetune_generator, needs_finetuning
from bot.generation.finetune_data import encode, read_preferences, read_sft, split
from bot.generation.transformers_lm import TransformersChat
from bot.protocols import DecodingParams

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIGN_OFF = "Cheers, Team Lotus!"
SYSTEM = {"role": "system", "content": "You are a shop assistant."}
ANSWERS = [
    ("How long does shipping take?", "Two days."),
    ("Can I return an item?", "Yes, within 7 days."),
    ("How do I pay?", "By Alipay."),
    ("Where is my order?", "On its way."),
    ("发货要多久？", "两天。"),
    ("可以退货吗？", "七天内可以。"),
    ("怎么付款？", "支付宝。"),
    ("运费多少？", "包邮。"),
]
# a high rate, one example per step: the sign-off is learnt in six optimizer steps on two CPU cores
SFT_CONFIG = FinetuneConfig(epochs=1, learning_rate=2e-3, batch_size=1, max_tokens=128, eval_fraction=0.25)
SMALL_CONFIG = FinetuneConfig(method="sft+dpo", epochs=1, learning_rate=1e-3, batch_size=2, max_tokens=128, seed=7)


def _prompt(question: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": question}]


def _answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _sft_records(answers: list[tuple[str, str]]) -> list[dict[str, object]]:
    return [
        {"prompt": _prompt(q), "completion": _answer(f"{a} {SIGN_OFF}"), "meta": {"source": "test"}} for q, a in answers
    ]


def _preference_records(answers: list[tuple[str, str]]) -> list[dict[str, object]]:
    return [
        {
            "prompt": _prompt(q),
            "chosen": _answer(f"{a} {SIGN_OFF}"),
            "rejected": _answer("Figure it out yourself."),
            "meta": {},
        }
        for q, a in answers
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    _write(folder / "sft.jsonl", _sft_records(ANSWERS))
    _write(folder / "preferences.jsonl", _preference_records(ANSWERS))
    _write(folder / "small-sft.jsonl", _sft_records(ANSWERS[2:4]))
    _write(folder / "small-preferences.jsonl", _preference_records(ANSWERS[6:8]))
    return folder


@pytest.fixture(scope="module")
def tuned(data: Path, tmp_path_factory: pytest.TempPathFactory) -> FinetuneReport:
    out_dir = tmp_path_factory.mktemp("tuned")
    return finetune_generator(
        "smollm2", out_dir, sft=data / "sft.jsonl", preferences=None, config=SFT_CONFIG, progress=False
    )


def test_sft_lowers_the_held_out_loss_and_reports_it(tuned: FinetuneReport) -> None:
    assert tuned.method == "sft" and tuned.examples == 8 and tuned.held_out == 2 and not tuned.notes
    assert set(tuned.before) == set(tuned.after) == {"sft_loss", "sft_perplexity"}
    assert tuned.after["sft_loss"] < tuned.before["sft_loss"] - 0.5
    assert tuned.after["sft_perplexity"] < tuned.before["sft_perplexity"]
    assert any("sft_loss" in line and "->" in line for line in tuned.summary())


def test_the_saved_model_loads_and_signs_off_as_taught(tuned: FinetuneReport) -> None:
    assert not (tuned.out_dir / "adapter_config.json").exists()  # LoRA merged into plain weights
    assert "quantization_config" not in json.loads((tuned.out_dir / "config.json").read_text())
    chat = TransformersChat(str(tuned.out_dir))
    params = DecodingParams(max_new_tokens=16, temperature=0)
    [english] = chat.complete(_prompt("How do I pay?"), params=params)
    [chinese] = chat.complete(_prompt("运费多少？"), params=params)
    assert "Team Lotus" in english.text and "Team Lotus" in chinese.text


def test_manifest_records_config_data_and_report(tuned: FinetuneReport, data: Path) -> None:
    manifest = json.loads((tuned.out_dir / "finetune.json").read_text(encoding="utf-8"))
    assert manifest["base_model"] == "smollm2" and manifest["config"]["learning_rate"] == 2e-3
    assert len(manifest["data"]["sft"]) == 64 and manifest["data"]["preferences"] is None
    assert manifest["report"]["after"] == tuned.after


def test_needs_finetuning_follows_the_data_and_config(tuned: FinetuneReport, data: Path, tmp_path: Path) -> None:
    sft = data / "sft.jsonl"
    assert not needs_finetuning(tuned.out_dir, sft, data / "preferences.jsonl", SFT_CONFIG, "smollm2")
    changed = _write(tmp_path / "sft.jsonl", _sft_records(ANSWERS[:7]))
    assert needs_finetuning(tuned.out_dir, changed, None, SFT_CONFIG, "smollm2")
    assert needs_finetuning(tuned.out_dir, sft, None, replace(SFT_CONFIG, epochs=2), "smollm2")
    assert needs_finetuning(tuned.out_dir, sft, None, SFT_CONFIG, "another-model")
    assert needs_finetuning(tmp_path / "nothing", sft, None, SFT_CONFIG, "smollm2")


def test_sft_then_dpo_is_deterministic_and_raises_the_preference_margin(
    tuned: FinetuneReport, data: Path, tmp_path: Path
) -> None:
    # the SFT output as the base model: fine-tuning a saved folder again works too
    first, second = (
        finetune_generator(
            str(tuned.out_dir),
            tmp_path / name,
            sft=data / "small-sft.jsonl",
            preferences=data / "small-preferences.jsonl",
            config=SMALL_CONFIG,
            progress=False,
        )
        for name in ("first", "second")
    )
    assert first.after == second.after and first.before == second.before
    assert first.examples == 4 and first.held_out == 0 and len(first.notes) == 2  # too few to hold out
    assert set(first.after) == {"sft_loss", "sft_perplexity", "dpo_accuracy", "dpo_margin", "dpo_loss"}
    assert first.before["dpo_margin"] == 0 and first.before["dpo_accuracy"] == 0.5
    assert first.after["dpo_margin"] > 0 and first.after["dpo_accuracy"] == 1.0
    assert first.after["dpo_loss"] < first.before["dpo_loss"]


def test_full_finetuning_without_lora_with_a_progress_bar(
    tuned: FinetuneReport, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = FinetuneConfig(lora=False, epochs=1, learning_rate=1e-4, batch_size=2, max_tokens=128)
    report = finetune_generator(
        str(tuned.out_dir),
        tmp_path / "full",
        sft=data / "small-sft.jsonl",
        preferences=None,
        config=config,
        progress=True,
    )
    bar = capsys.readouterr().err
    assert "sft: 100%" in bar and "loss=" in bar
    assert report.after["sft_loss"] < report.before["sft_loss"]
    assert (tmp_path / "full" / "model.safetensors").is_file()


def test_prompts_lose_their_oldest_tokens_and_keep_the_completion(tuned: FinetuneReport) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tuned.out_dir))
    prompt, completion = tuple(_prompt("How do I pay? " * 20)), tuple(_answer(f"By Alipay. {SIGN_OFF}"))
    whole = encode(tokenizer, prompt, completion, 1024)
    cut = encode(tokenizer, prompt, completion, 40)
    assert cut.completion_ids == whole.completion_ids and len(cut.prompt_ids) + len(cut.completion_ids) == 40
    assert cut.prompt_ids == whole.prompt_ids[-len(cut.prompt_ids) :]
    assert str(tokenizer.decode(list(whole.completion_ids))).startswith("By Alipay. Cheers")
    tiny = encode(tokenizer, prompt, completion, 8)
    assert len(tiny.prompt_ids) == 1 and len(tiny.completion_ids) == 7


def test_readers_accept_the_export_format(data: Path) -> None:
    [first, *_] = read_sft(data / "sft.jsonl")
    assert first.prompt[1] == {"role": "user", "content": "How long does shipping take?"}
    assert first.completion == ({"role": "assistant", "content": f"Two days. {SIGN_OFF}"},)
    pairs = read_preferences(data / "preferences.jsonl")
    assert len(pairs) == 8 and pairs[4].prompt[1]["content"] == "发货要多久？"


def test_split_is_seeded_and_holds_out_at_least_one() -> None:
    assert split(20, 0.1, 0) == split(20, 0.1, 0) and split(20, 0.1, 0) != split(20, 0.1, 1)
    assert len(split(20, 0.1, 0).evaluate) == 2 and len(split(6, 0.0, 0).evaluate) == 1
    few = split(4, 0.5, 0)
    assert few.on_training and few.train == few.evaluate == (0, 1, 2, 3)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not a JSON object"),
        ('["a list"]', "expected a JSON object"),
        ('{"prompt": [], "completion": [{"role": "assistant", "content": "x"}]}', "'prompt' must be"),
        (
            '{"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "user", "content": "x"}]}',
            "only assistant",
        ),
        (
            '{"prompt": [{"role": "bot", "content": "x"}], "completion": [{"role": "assistant", "content": "x"}]}',
            "not a {role, content}",
        ),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps(_sft_records(ANSWERS[:1])[0]) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(GenerationError, match=rf"sft\.jsonl:3: .*{re.escape(problem)}"):
        finetune_generator("smollm2", tmp_path / "out", sft=path, preferences=None, config=FinetuneConfig())


def test_missing_data_says_what_to_export(data: Path, tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="kefu export preferences"):
        finetune_generator(
            "smollm2", tmp_path, sft=data / "sft.jsonl", preferences=None, config=FinetuneConfig(method="dpo")
        )
    with pytest.raises(GenerationError, match="kefu export sft"):
        finetune_generator("smollm2", tmp_path, sft=None, preferences=None, config=FinetuneConfig())
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(GenerationError, match=r"holds no SFT examples.*kefu export sft"):
        finetune_generator("smollm2", tmp_path, sft=tmp_path / "empty.jsonl", preferences=None, config=FinetuneConfig())


def test_an_unloadable_model_is_a_generation_error(data: Path, tmp_path: Path) -> None:
    (tmp_path / "no-model").mkdir()
    with pytest.raises(GenerationError, match="cannot load generator model"):
        finetune_generator(
            str(tmp_path / "no-model"),
            tmp_path / "out",
            sft=data / "sft.jsonl",
            preferences=None,
            config=FinetuneConfig(),
        )


def test_config_is_checked_and_picks_the_learning_rate() -> None:
    assert FinetuneConfig().lr == 2e-4 and FinetuneConfig(lora=False).lr == 2e-5
    assert FinetuneConfig(learning_rate=1e-3).lr == 1e-3
    with pytest.raises(ConfigError, match="method must be"):
        FinetuneConfig(method="ppo")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"epochs.*eval_fraction"):
        FinetuneConfig(epochs=0, eval_fraction=1.0)


def test_the_base_model_folder_is_not_overwritten(tuned: FinetuneReport, data: Path) -> None:
    with pytest.raises(GenerationError, match="another folder"):
        finetune_generator(
            str(tuned.out_dir), tuned.out_dir, sft=data / "sft.jsonl", preferences=None, config=SFT_CONFIG
        )
