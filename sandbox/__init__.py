"""Sandbox PBX: a carrier-like SIP server on loopback for trying the dialer without a real PBX.

Public API: ``SandboxPbx`` (start/stop/port/call_log), ``load_plan`` and the ``Plan`` it
returns, ``CallRecord``. The CLI command ``dialer sandbox-pbx`` lives in ``sandbox.cli``.
"""

from sandbox.calls import CallRecord, EndedBy
from sandbox.plan import Plan, load_plan
from sandbox.server import SandboxPbx

__all__ = ["CallRecord", "EndedBy", "Plan", "SandboxPbx", "load_plan"]
