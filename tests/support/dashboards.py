"""Every PromQL query that deploy/ runs, as plain text a test can check or evaluate.

Why: a panel or alert that names a metric the app does not export shows "No data"
or never fires, and nobody notices until the day it matters. Unit tests check the
names against shared/metrics.py; an end-to-end test can send the same expressions
to a live Prometheus. For that, Grafana's template variables are replaced by what
"All" sends (the regex ``.*``, the variables' ``allValue``) and its interval macros
by one fixed window, so what comes out is PromQL that Prometheus itself accepts.

The PromQL reading here is deliberately small (no parser dependency): it finds
metric names, label matchers and grouping labels in the expressions this repo
writes, and tests/unit/test_dashboards.py pins that it catches typos.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "deploy" / "grafana" / "dashboards"
DATASOURCE_DIR = REPO / "deploy" / "grafana" / "provisioning" / "datasources"
ALERTS_FILE = REPO / "deploy" / "prometheus" / "alerts.yml"

FIXED_WINDOW = "5m"
ALL_VALUE = ".*"

Dashboard = dict[str, Any]
Panel = dict[str, Any]

_MACRO = re.compile(r"\$\{?__(?:rate_interval|interval|range)\}?(?![\w])")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")
_SELECTOR = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
     "and", "or", "unless", "inf", "nan"}
)


def dashboard_files() -> list[Path]:
    """The dashboard JSON files Grafana provisions, sorted so test ids are stable."""
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboard(path: Path) -> Dashboard:
    data: Dashboard = json.loads(path.read_text(encoding="utf-8"))
    return data


def iter_panels(dashboard: Dashboard) -> Iterator[Panel]:
    """Every panel, rows included, and the panels folded inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_names(dashboard: Dashboard) -> set[str]:
    return {var["name"] for var in dashboard.get("templating", {}).get("list", [])}


def substitute(expr: str, variables: set[str], window: str = FIXED_WINDOW) -> str:
    """The query Grafana would send with every variable on "All" and a fixed interval.

    Unknown variables are left alone, so a stray ``$`` shows up in a test.
    """
    expr = _MACRO.sub(window, expr)

    def _all(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return ALL_VALUE if name in variables else match.group(0)

    return _VARIABLE.sub(_all, expr)


def iter_panel_queries(window: str = FIXED_WINDOW) -> list[tuple[str, str, str]]:
    """(dashboard file name, panel title, PromQL) for every query target of every panel."""
    found: list[tuple[str, str, str]] = []
    for path in dashboard_files():
        dashboard = load_dashboard(path)
        variables = variable_names(dashboard)
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                expr = substitute(target.get("expr", ""), variables, window)
                found.append((path.name, panel.get("title", ""), expr))
    return found


def iter_raw_panel_queries() -> list[tuple[str, str, str]]:
    """Like :func:`iter_panel_queries`, but the expressions as written, variables and all."""
    return [
        (path.name, panel.get("title", ""), target.get("expr", ""))
        for path in dashboard_files()
        for panel in iter_panels(load_dashboard(path))
        for target in panel.get("targets", [])
    ]


def iter_variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard file name, variable name, query) for every query-type template variable."""
    found: list[tuple[str, str, str]] = []
    for path in dashboard_files():
        for var in load_dashboard(path).get("templating", {}).get("list", []):
            if var.get("type") == "query":
                query = var.get("query")
                text = query.get("query", "") if isinstance(query, dict) else str(query or "")
                found.append((path.name, var["name"], text))
    return found


def load_alert_rules(path: Path = ALERTS_FILE) -> list[dict[str, Any]]:
    """Every alerting rule in the rule file, in file order."""
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def iter_alert_exprs(path: Path = ALERTS_FILE) -> list[tuple[str, str]]:
    """(alert name, PromQL) for every alerting rule."""
    return [(rule["alert"], str(rule["expr"]).strip()) for rule in load_alert_rules(path)]


def _without_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions,
    keywords, label names, grouping labels, durations or numbers."""
    text = _BRACES.sub("{}", _without_strings(expr))
    text = _BRACKETS.sub("[]", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.groups()
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def label_matchers(expr: str) -> list[tuple[str, str, str, str]]:
    """(metric, label, operator, quoted value) for each matcher in a ``name{...}`` selector."""
    return [
        (metric, *matcher.groups())
        for metric, body in ((m.group(1), m.group(2)) for m in _SELECTOR.finditer(expr))
        for matcher in _MATCHER.finditer(body)
    ]


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_left/group_right clauses."""
    labels: set[str] = set()
    for match in _GROUPING.finditer(_without_strings(expr)):
        labels.update(label.strip() for label in match.group(1).split(",") if label.strip())
    return labels


def exported_series() -> dict[str, frozenset[str]]:
    """Series names shared/metrics.py exports, each with the labels it may carry.

    Counters export ``<name>_total`` and ``_created``, histograms ``_bucket`` (with
    ``le``), ``_sum``, ``_count`` and ``_created``. Gauges in multiprocess mode
    ``liveall``/``all`` also carry the process's ``pid``.
    """
    # Imported here, not at the top: shared.metrics registers its collectors in the
    # global registry, which only the tests that need it should pay for.
    from prometheus_client.metrics import MetricWrapperBase

    import shared.metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
    }
    series: dict[str, frozenset[str]] = {}
    for obj in vars(shared.metrics).values():
        if not isinstance(obj, MetricWrapperBase):
            continue
        labels = set(obj._labelnames)
        if getattr(obj, "_multiprocess_mode", "") in {"liveall", "all"}:
            labels.add("pid")
        for family in obj.describe():
            if family.type not in suffixes:
                raise AssertionError(f"{family.name}: metric type {family.type!r} not mapped to series names")
            for suffix in suffixes[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                if family.type == "summary" and not suffix:
                    extra = {"quantile"}
                series[family.name + suffix] = frozenset(labels | extra)
    return series


def provisioned_datasource_uids() -> set[str]:
    """uids of the datasources Grafana provisions from deploy/grafana/provisioning."""
    uids: set[str] = set()
    for path in sorted(DATASOURCE_DIR.glob("*.y*ml")):
        for source in yaml.safe_load(path.read_text(encoding="utf-8")).get("datasources", []):
            uids.add(source["uid"])
    return uids
