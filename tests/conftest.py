"""Fixtures for every test: real services come from tests/support, never mocks."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.support.services"]
if os.path.exists(os.path.join(os.path.dirname(__file__), "support", "sipp.py")):
    pytest_plugins.append("tests.support.sipp")
if os.path.exists(os.path.join(os.path.dirname(__file__), "support", "kamailio.py")):
    pytest_plugins.append("tests.support.kamailio")  # the `kamailio` fixture: a registrar/proxy of a test's own

settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")
