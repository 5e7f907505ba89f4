"""Fixtures of the fault tests: a private rig per test, so a test may stop or kill any part of it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.rig import FaultRig, fault_rig
from tests.support.needs import need_program

RigFactory = Callable[..., FaultRig]


def _sipp_or_skip() -> None:
    need_program("sipp", "Debian: apt-get install sip-tester", "/usr/bin/sipp")


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
