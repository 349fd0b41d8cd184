"""The atheris targets in fuzz/ run, each a short, seeded libFuzzer session over a copy of its seed corpus, and
find no crash. Each runs in its own process: libFuzzer ends the process when it is done. Longer runs are for
people hunting crashes (see fuzz/__init__.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("atheris")

TARGETS = ("wechat_xml", "payloads", "project_files", "nlu_input")
RUNS = 2000  # a few seconds each on a busy core, start-up included
CEILING_S = 20  # libFuzzer stops by itself at this time, however many runs are left


@pytest.mark.parametrize("target", TARGETS)
def test_the_target_runs_without_a_crash(target: str, tmp_path: Path) -> None:
    corpus = shutil.copytree(REPO / "fuzz" / "corpus" / target, tmp_path / "corpus")  # libFuzzer adds to it
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = [sys.executable, "-m", f"fuzz.{target}", f"-runs={RUNS}", "-seed=1", f"-max_total_time={CEILING_S}"]
    # Linux keeps a process's peak RSS across fork and exec, so the target would start at the test run's
    # (gigabytes, with models loaded) and libFuzzer's RSS limit would call it out of memory at once.
    command += ["-rss_limit_mb=0", f"-artifact_prefix={artifacts}/", str(corpus)]
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path, "TMPDIR": str(tmp_path)}  # project_files writes its files there
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=CEILING_S + 60)
    output = result.stdout + result.stderr
    tail = "\n".join(line for line in output.splitlines() if not line.startswith("INFO: Instrumenting"))[-4000:]
    assert result.returncode == 0, (
        f"fuzz.{target} exited {result.returncode}; crashes: {sorted(artifacts.iterdir())}\n{tail}"
    )
    assert re.search(r"^Done \d+ runs in \d+ second", output, re.MULTILINE), tail  # libFuzzer finished
    assert not any(artifacts.iterdir()), tail
