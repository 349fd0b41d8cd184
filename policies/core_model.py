"""A trained dialogue transformer with its featurizer: prediction, and storage in a model folder.

A model folder holds model.pt (tensors only, loaded with weights_only) and meta.json (the feature
vocabulary, the network sizes and what the model was trained on). meta.json is written last, so a
folder without it is never trusted.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bot.errors import ModelNotTrainedError
from bot.model_files import read_meta as read_meta_file
from bot.model_files import write_model
from policies.state_features import State, StateFeaturizer, Vocabulary
from policies.ted import TedConfig, TedNet

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
FORMAT_VERSION = 1  # bump when the featurization or the network changes: older models are then retrained
RETRAIN = "run `kefu train core`"


class CoreModel:
    """The network in eval mode, the featurizer it was trained with, and its config."""

    def __init__(self, net: TedNet, featurizer: StateFeaturizer, config: TedConfig) -> None:
        self.net = net.eval()
        self.featurizer = featurizer
        self.config = config

    @classmethod
    def build(cls, featurizer: StateFeaturizer, config: TedConfig) -> CoreModel:
        """An untrained model over `featurizer`'s vocabulary (call inside `ted.seeded` for reproducible weights)."""
        return cls(TedNet(featurizer.size, len(featurizer.actions), config), featurizer, config)

    @property
    def actions(self) -> tuple[str, ...]:
        return self.featurizer.actions

    def window(self, states: Sequence[State]) -> torch.Tensor:
        """The network input for the decision after the last of `states`: (max_history, features)."""
        return torch.from_numpy(self.featurizer.window(states, self.config.max_history))

    def logits(self, states: Sequence[State]) -> torch.Tensor:
        """Action logits for the decision after the last of `states`."""
        with torch.inference_mode():
            logits: torch.Tensor = self.net(self.window(states).unsqueeze(0))[0]
        return logits

    def save(self, model_dir: Path, extra: dict[str, Any]) -> None:
        """Write model.pt and then meta.json (atomically each)."""
        meta = {
            "format": FORMAT_VERSION,
            "vocabulary": self.featurizer.vocabulary.to_json(),
            "network": self.config.to_json(),
            **extra,
        }
        tensors = dict(self.net.state_dict())
        write_model(model_dir, MODEL_FILE, tensors, META_FILE, meta)

    @classmethod
    def load(cls, model_dir: Path) -> tuple[CoreModel, dict[str, Any]]:
        """What `save` wrote, with its meta.json; ModelNotTrainedError when missing or unreadable."""
        meta = read_meta(model_dir)
        if meta is None or not (model_dir / MODEL_FILE).is_file():
            raise ModelNotTrainedError(f"no trained dialogue policy in {model_dir}: {RETRAIN}")
        try:
            tensors = torch.load(model_dir / MODEL_FILE, weights_only=True)
            featurizer = StateFeaturizer(Vocabulary.from_json(meta["vocabulary"]))
            config = TedConfig.from_json(meta["network"])
            net = TedNet(featurizer.size, len(featurizer.actions), config)
            net.load_state_dict(tensors)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, OSError, pickle.UnpicklingError) as err:
            raise ModelNotTrainedError(f"the dialogue policy in {model_dir} is unreadable ({err}): {RETRAIN}") from err
        return cls(net, featurizer, config), meta


def read_meta(model_dir: Path) -> dict[str, Any] | None:
    """The folder's meta.json, or None when it is missing, unreadable or of another format."""
    return read_meta_file(model_dir / META_FILE, FORMAT_VERSION)
