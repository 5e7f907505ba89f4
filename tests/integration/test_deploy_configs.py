"""The deployment files hold together without a Docker engine: what can be checked statically is.

- Prometheus: promtool accepts the config and the rules it references, the alert unit
  tests pass, and every dashboard query parses as PromQL.
- docker-compose.yml: valid against the Compose Specification schema (vendored in
  tests/support, see compose-spec.NOTICE), no secret in it, services wait for health,
  the worker scales, and the files mounted are the files tested here.
- Dockerfile and the health probe it installs.

promtool comes from Debian's `prometheus` package: missing, these tests skip locally
and fail in CI (CI is set there), so a broken install cannot pass as green.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator, FormatChecker

from tests.support.dashboards import REPO, iter_alert_exprs, iter_panel_queries, load_alert_rules

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
COMPOSE_SCHEMA = REPO / "tests" / "support" / "compose-spec.json"
HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"

APP_SERVICES = {"migrate", "dispatcher", "worker", "api", "pbx"}
# Scrape job -> the compose service whose /metrics it reads.
SCRAPED = {"dialer-worker": "worker", "dialer-dispatcher": "dispatcher", "dialer-api": "api"}
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$", re.IGNORECASE)


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed; CI installs Debian's `prometheus` package in .ci/run")
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    return path


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a mapping, whichever of the two compose forms it uses."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: None if value is None else str(value) for key, value in env.items()}


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repo path, for the service's bind mounts of repo files."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (REPO / source).resolve()
    return mounts


def flag(command: list[str], name: str) -> str:
    """The value after ``name`` in an exec-form command, or of ``name=value``."""
    for i, arg in enumerate(command):
        if arg == name:
            return command[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {command}")


def env_example() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dialer_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- Prometheus


def test_prometheus_config_and_its_rule_files_pass_promtool(promtool: str) -> None:
    """`promtool check config` also loads the rule files the config names (relative to it)."""
    result = run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts.yml" in result.stdout, "the config does not reference the alert rules"


def test_alert_rules_pass_their_promtool_unit_tests(promtool: str) -> None:
    """Each alert fires on its failure and stays quiet on the look-alikes (alerts_test.yml)."""
    result = run_promtool(promtool, "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """An alert without a firing case may never fire; one without a quiet case may always fire."""
    cases: dict[str, set[str]] = {}
    for test in load_yaml(ALERT_TESTS)["tests"]:
        for check in test.get("alert_rule_test", []):
            kind = "fires" if check.get("exp_alerts") else "quiet"
            cases.setdefault(check["alertname"], set()).add(kind)
    alerts = {rule["alert"] for rule in load_alert_rules()}
    assert {alert: cases.get(alert, set()) for alert in alerts} == {alert: {"fires", "quiet"} for alert in alerts}


def test_every_alert_tells_the_on_call_what_to_do() -> None:
    """Routing needs a severity; the person paged needs a summary and what to check."""
    for rule in load_alert_rules():
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and len(annotations.get("description", "")) > 80, rule["alert"]


def test_the_runbook_lists_every_alert() -> None:
    """README.md's alert table is where the on-call looks an alert up; a new alert belongs there too."""
    runbook = (REPO / "README.md").read_text(encoding="utf-8")
    assert [rule["alert"] for rule in load_alert_rules() if f"| {rule['alert']} |" not in runbook] == []


def test_every_dashboard_and_alert_query_parses_as_promql(promtool: str, tmp_path: Path) -> None:
    """Grafana shows a parse error as an empty panel; promtool rejects it here instead."""
    queries = [expr for _name, _title, expr in iter_panel_queries()] + [expr for _alert, expr in iter_alert_exprs()]
    rules = [{"record": f"dialer:query_{i}", "expr": expr} for i, expr in enumerate(queries)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}), encoding="utf-8")
    result = run_promtool(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_jobs_reach_each_service_on_its_metrics_port(compose: dict[str, Any]) -> None:
    """The port Prometheus scrapes is the one the service is told to serve /metrics on."""
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    for job_name, service_name in SCRAPED.items():
        service = services(compose)[service_name]
        port = environment(service).get("DIALER_METRICS_PORT")
        if "--metrics-port" in service["command"]:
            assert flag(service["command"], "--metrics-port") == port, service_name
        assert f"127.0.0.1:{port}/metrics" in " ".join(service["healthcheck"]["test"]), service_name
        assert environment(service).get("DIALER_METRICS_HOST") == "0.0.0.0", f"{service_name} listens on loopback"
        job = jobs[job_name]
        if service_name == "worker":
            (sd,) = job["dns_sd_configs"]  # one target per replica, see prometheus.yml
            assert (sd["names"], sd["type"], str(sd["port"])) == (["worker"], "A", port)
        else:
            assert job["static_configs"] == [{"targets": [f"{service_name}:{port}"]}]


# ---------------------------------------------------------------- docker-compose.yml


def duration(value: object) -> bool:
    return not isinstance(value, str) or bool(_DURATION.match(value))


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    """What `docker compose config` would reject, found without Docker."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    checker = FormatChecker()
    checker.checks("duration")(duration)
    errors = sorted(Draft201909Validator(schema, format_checker=checker).iter_errors(compose), key=str)
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []


def test_the_schema_check_rejects_a_broken_compose_file(compose: dict[str, Any]) -> None:
    """The schema really is enforced: a misspelt condition and a bad duration are caught."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    checker = FormatChecker()
    checker.checks("duration")(duration)
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["depends_on"]["redis"]["condition"] = "service_healty"
    broken["services"]["worker"]["stop_grace_period"] = "ninety seconds"
    errors = list(Draft201909Validator(schema, format_checker=checker).iter_errors(broken))
    assert len(errors) == 2


def test_the_whole_stack_is_there(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == APP_SERVICES | {"postgres", "redis", "prometheus", "grafana"}


def test_services_wait_for_what_they_need_to_be_healthy(compose: dict[str, Any]) -> None:
    """A dependency is either healthy (and has a healthcheck to say so) or a one-shot that exited 0."""
    every = services(compose)
    for name, service in every.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions starts too early"
        for dependency, rule in depends.items():
            condition = rule["condition"]
            target = every[dependency]
            if condition == "service_completed_successfully":
                assert target.get("restart", "no") == "no", f"{dependency} is one-shot but restarts"
            else:
                assert condition == "service_healthy", f"{name} -> {dependency}: {condition}"
                check = target.get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), f"{dependency} has no healthcheck"


def test_app_services_start_after_migrations(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES - {"migrate", "pbx"}:
        condition = services(compose)[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_compose_file_holds_no_secret_literal(compose: dict[str, Any]) -> None:
    """Passwords and tokens reach containers only as ${VARIABLES} from .env."""
    for name, service in services(compose).items():
        for key, value in environment(service).items():
            if _SECRET_NAME.search(key) and value is not None:
                assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", value), f"{name}: {key} is a literal"
    for password in re.findall(r"://[^/:@\s]+:([^@\s]+)@", COMPOSE_FILE.read_text(encoding="utf-8")):
        assert _VARIABLE.fullmatch(password), f"a URL in the compose file holds a literal password: {password}"


def test_every_variable_has_a_fake_value_in_env_example() -> None:
    """`cp .env.example .env` gives a stack that starts, and no real secret is committed."""
    example = env_example()
    required = {
        name for name, op, _ in _VARIABLE.findall(COMPOSE_FILE.read_text(encoding="utf-8")) if op != ":-"
    }
    assert required - example.keys() == set()
    for key, value in example.items():
        if _SECRET_NAME.search(key):
            assert value.startswith(("change-me", "sandbox-")), f"{key} does not look like a placeholder"


def test_pulled_images_are_pinned_to_a_version(compose: dict[str, Any]) -> None:
    """`latest` changes under a running deployment; the app image is built here, so local."""
    for name, service in services(compose).items():
        image = service.get("image", "")
        if "build" in service:
            continue
        _, _, tag = image.rpartition(":")
        assert re.match(r"v?\d+", tag), f"{name}: image {image!r} is not pinned to a version"


def test_the_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    """`--scale worker=N` fails on a fixed container name or a published port."""
    worker = services(compose)["worker"]
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker
    assert environment(worker).get("PROMETHEUS_MULTIPROC_DIR") in worker.get("tmpfs", [])


def test_published_ports_bind_loopback_only(compose: dict[str, Any]) -> None:
    """Grafana is anonymous and the API holds campaigns: nothing is published beyond this host."""
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_prometheus_runs_the_config_promtool_checks(compose: dict[str, Any]) -> None:
    prometheus = services(compose)["prometheus"]
    config = Path(flag(prometheus["command"], "--config.file"))
    mounts = bind_mounts(prometheus)
    assert mounts[str(config.parent)] / config.name == PROMETHEUS_CONFIG.resolve()
    assert all(volume.endswith(":ro") for volume in prometheus["volumes"] if volume.startswith("."))


def test_grafana_mounts_provisioning_and_dashboards_where_the_provider_looks(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    mounts = bind_mounts(grafana)
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    assert mounts["/etc/grafana/provisioning"] == provisioning.resolve()
    (provider,) = load_yaml(provisioning / "dashboards" / "dialer.yml")["providers"]
    assert mounts[provider["options"]["path"]] == (REPO / "deploy" / "grafana" / "dashboards").resolve()
    env = environment(grafana)
    assert (env["GF_AUTH_ANONYMOUS_ENABLED"], env["GF_AUTH_ANONYMOUS_ORG_ROLE"]) == ("true", "Viewer")


def test_app_services_share_one_image_with_the_dialer_entrypoint(compose: dict[str, Any]) -> None:
    images = {services(compose)[name].get("image") for name in APP_SERVICES}
    assert len(images) == 1
    assert services(compose)["migrate"]["command"] == ["db", "migrate"]
    assert services(compose)["pbx"]["command"][0] == "sandbox-pbx"


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_runs_dialer_as_non_root_on_slim_python() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert [arg for op, arg in instructions if op == "ENTRYPOINT"] == ['["dialer"]']
    assert ("RUN", "pip install -c constraints.txt .") in instructions  # the locked versions, see scripts/lock


def test_dockerfile_copies_every_package_the_distribution_ships() -> None:
    """A package left out of the image imports fine in tests and fails in the container."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    sources = {
        source.rstrip("/")
        for op, arg in dockerfile_instructions()
        if op == "COPY"
        for source in [part for part in arg.split() if not part.startswith("--")][:-1]
    }
    assert packages | {"pyproject.toml", "README.md"} <= sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the build context"
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()}
    assert ".env" in ignored and not sources & ignored


# ---------------------------------------------------------------- health probe


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[int]]]:
    """A /metrics stand-in on 127.0.0.1 whose status code a test sets."""
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0])
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics", status
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_probe_passes_on_2xx_only(http_server: tuple[str, list[int]]) -> None:
    probe = load_healthcheck()
    url, status = http_server
    assert probe.main(["http", url, "--timeout", "2"]) == 0
    status[0] = 500
    assert probe.main(["http", url, "--timeout", "2"]) == 1


def test_sip_probe_passes_against_the_sandbox_pbx() -> None:
    """The pbx service's healthcheck: the sandbox PBX answers OPTIONS."""
    from sandbox.plan import load_plan
    from sandbox.server import SandboxPbx

    pbx = SandboxPbx(load_plan(None), host="127.0.0.1", port=0)
    pbx.start()
    try:
        assert load_healthcheck().main(["sip", f"127.0.0.1:{pbx.port}", "--timeout", "3"]) == 0
    finally:
        pbx.stop()


def test_sip_probe_fails_on_silence() -> None:
    """A bound UDP port that never answers is not a SIP server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        assert load_healthcheck().main(["sip", f"127.0.0.1:{port}", "--timeout", "0.3"]) == 1
