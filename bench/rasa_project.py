"""Writes the demo shop as a Rasa 3.x project, for `bench/load_benchmark.py --rasa-url`: the shop's domain and
training data as they are, Rasa's recommended Chinese pipeline (jieba, DIET) and policies (memoization, rules,
TED) from bench/rasa/, and the shop's custom actions for a rasa-sdk action server.

    .venv/bin/python bench/rasa_project.py /tmp/rasa-shop
    # then, in a Python 3.10 environment with `pip install rasa==3.6.21 jieba` (see bench/README.md):
    cd /tmp/rasa-shop && rasa train && rasa run actions -p 5055 & rasa run --enable-api -p 5005

kefu sets the `language` slot from each message; Rasa does not, so the copy starts it at `zh` (the shop's
responses are conditioned on it).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop"


def write_project(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    domain = yaml.safe_load((SHOP / "domain.yml").read_text(encoding="utf-8"))
    domain["slots"]["language"]["initial_value"] = "zh"
    (target / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (target / "data").mkdir(exist_ok=True)
    for name in ("nlu.yml", "stories.yml", "rules.yml"):
        shutil.copy(SHOP / "data" / name, target / "data" / name)
    for name in ("config.yml", "endpoints.yml", "credentials.yml"):
        shutil.copy(REPO / "bench" / "rasa" / name, target / name)
    shutil.copytree(REPO / "bench" / "rasa" / "actions", target / "actions", dirs_exist_ok=True)
    (target / "actions" / "shop_path.txt").write_text(str(SHOP), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="the folder to write the Rasa project into")
    write_project(parser.parse_args().target)
    print(f"Rasa project written to {parser.parse_args().target}")


if __name__ == "__main__":
    main()
