"""Which pjsua2 engines a test can run against, and the environment that loads each.

``scripts/test`` runs the SIP, flow and fault suites with the engine built by
``scripts/build-engine`` first on PYTHONPATH, and names its directory in
``DIALER_TEST_ENGINE_PATH``. Without that variable a test that needs the built
engine installs it from the build cache into a temporary directory, and skips
when nothing is cached; under ``CI=true`` it fails instead, because ``.ci/run``
must have built it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.needs import unavailable

ROOT = Path(__file__).resolve().parents[2]
ENGINE_PATH_VARIABLE = "DIALER_TEST_ENGINE_PATH"
_installed: Path | None = None


def _without(path: str, entry: str | None) -> str:
    parts = [p for p in path.split(os.pathsep) if p and (entry is None or Path(p).resolve() != Path(entry).resolve())]
    return os.pathsep.join(parts)


def wheel_env() -> dict[str, str]:
    """This environment with the built engine taken off PYTHONPATH: ``import pjsua2`` finds the PyPI wheel."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), _without(env.get("PYTHONPATH", ""), env.get(ENGINE_PATH_VARIABLE))]
    ).rstrip(os.pathsep)
    env.pop(ENGINE_PATH_VARIABLE, None)
    return env


def built_engine_dir(tmp_root: Path) -> Path:
    """A directory holding the built engine: the one scripts/test made, else one installed from the cache."""
    global _installed
    given = os.environ.get(ENGINE_PATH_VARIABLE)
    if given:
        return Path(given)
    if _installed is not None:
        return _installed
    target = tmp_root / "built-engine"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "build-engine"), "--cached", "--target", str(target)],
                          capture_output=True, text=True, check=False, env={**os.environ, "PYTHON": sys.executable})
    if done.returncode != 0:
        reason = done.stderr.strip()
        message = f"no built engine: set {ENGINE_PATH_VARIABLE} or run bash scripts/build-engine ({reason})"
        unavailable(message + "; .ci/run builds it before the tests")
    _installed = target
    return target


def built_env(engine_dir: Path) -> dict[str, str]:
    """This environment with the built engine first on PYTHONPATH."""
    env = wheel_env()
    env["PYTHONPATH"] = os.pathsep.join([str(engine_dir), env["PYTHONPATH"]])
    env[ENGINE_PATH_VARIABLE] = str(engine_dir)
    return env
