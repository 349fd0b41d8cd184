"""Coverage-guided fuzz targets (atheris, libFuzzer) for kefu's entry points, beside the hypothesis tests in
tests/fuzz: `wechat_xml`, `payloads`, `project_files` and `nlu_input`, each with a seed corpus in corpus/.

Run one with `.venv/bin/python -m fuzz.<name> [libFuzzer flags] [corpus folders]`; for a long hunt:

    mkdir -p /tmp/corpus && .venv/bin/python -m fuzz.payloads -max_total_time=600 -artifact_prefix=/tmp/ \\
        /tmp/corpus fuzz/corpus/payloads

New inputs go into the first folder (give a scratch one), a crash into crash-<sha1> under -artifact_prefix
(the working folder without it); `.venv/bin/python -m fuzz.payloads /tmp/crash-...` runs that input again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def attempt(call: Callable[[], T], refusal: type[E]) -> T | E:
    """What `call` returns, or the `refusal` it raises; any other exception propagates: a crash."""
    try:
        return call()
    except refusal as err:
        return err
