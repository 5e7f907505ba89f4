"""Fixtures of the fault tests: a private rig per test, so a test may stop or kill any part of it."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.rig import FaultRig, fault_rig

RigFactory = Callable[..., FaultRig]


def _sipp_or_skip() -> None:
    if shutil.which("sipp") is None and not os.path.exists("/usr/bin/sipp"):
        pytest.skip("sipp is not installed")


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[RigFactory]:
    """``rig_factory(scenario="answer_fast", ...)``: a rig with other options; stopped at teardown."""
    _sipp_or_skip()
    with contextlib.ExitStack() as stack:
        def make(**options: Any) -> FaultRig:
            return stack.enter_context(fault_rig(tmp_path / f"rig{len(stack._exit_callbacks)}", **options))
        yield make


@pytest.fixture
def rig(rig_factory: RigFactory) -> FaultRig:
    """Private Postgres and Redis, sipp's fault_hold carrier, an empty fleet; all stopped at teardown."""
    return rig_factory()
