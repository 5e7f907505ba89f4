"""Dashboards and alert rules query only what the app exports, and Grafana can load them.

A metric renamed in shared/metrics.py, a label typo in a panel or an alert on a
series nobody writes fails here, not as an empty graph on the day of an incident.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.support.dashboards import (
    dashboard_files,
    exported_series,
    grouping_labels,
    iter_alert_exprs,
    iter_panel_queries,
    iter_panels,
    iter_raw_panel_queries,
    iter_variable_queries,
    label_matchers,
    load_dashboard,
    metric_names,
    provisioned_datasource_uids,
)

EXPECTED_DASHBOARDS = {"campaign-overview.json", "sip-health.json", "fleet.json"}
# Labels Prometheus attaches to every scraped series, whatever the app defines.
TARGET_LABELS = frozenset({"job", "instance"})
# `up` is written by Prometheus for each target; only the alert that a target is down may use it.
ALERT_ONLY_SERIES = {"up": frozenset()}

_VARIABLE_USE = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"[^"]*(\$\{?\w+|\[\[\w+)')

DASHBOARDS = dashboard_files()
DASHBOARD_IDS = [path.name for path in DASHBOARDS]


@pytest.fixture(scope="module")
def series() -> dict[str, frozenset[str]]:
    return exported_series()


def query_problems(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """What is wrong with one expression: unknown metrics, labels no referenced metric has,
    histogram quantiles that drop `le`. Empty when the expression is sound."""
    problems: list[str] = []
    names = metric_names(expr)
    if not names:
        problems.append("references no metric")
    for name in sorted(names - series.keys()):
        problems.append(f"unknown metric {name!r}")
    for metric, label, _op, _value in label_matchers(expr):
        if metric in series and label not in series[metric] | TARGET_LABELS:
            problems.append(f"{metric} has no label {label!r}")
    known = set(TARGET_LABELS).union(*(series[n] for n in names if n in series))
    for label in sorted(grouping_labels(expr) - known):
        problems.append(f"groups by {label!r}, which no metric in the expression has")
    if "histogram_quantile" in expr and "le" not in grouping_labels(expr):
        problems.append("histogram_quantile over buckets aggregated without `le`")
    return problems


def test_the_three_dashboards_are_there() -> None:
    """Campaign overview, SIP health and fleet are what the README and the on-call point at."""
    assert set(DASHBOARD_IDS) == EXPECTED_DASHBOARDS


def test_dashboard_uids_are_unique_and_stable() -> None:
    """Links and bookmarks use the uid; two files with one uid make Grafana load only one."""
    uids = [load_dashboard(path).get("uid") for path in DASHBOARDS]
    assert all(isinstance(uid, str) and uid for uid in uids), uids
    assert len(set(uids)) == len(uids), uids


@pytest.mark.parametrize("path", DASHBOARDS, ids=DASHBOARD_IDS)
def test_panel_ids_are_unique(path: Path) -> None:
    """Grafana keys panel state and links by id; a duplicate id hides one of the panels."""
    ids = Counter(panel.get("id") for panel in iter_panels(load_dashboard(path)))
    assert None not in ids
    assert [pid for pid, count in ids.items() if count > 1] == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=DASHBOARD_IDS)
def test_every_datasource_is_the_provisioned_one(path: Path) -> None:
    """A uid that is not provisioned shows "datasource not found" on a fresh Grafana."""
    provisioned = provisioned_datasource_uids()
    dashboard = load_dashboard(path)
    holders = [*iter_panels(dashboard), *dashboard.get("templating", {}).get("list", [])]
    holders += [target for panel in iter_panels(dashboard) for target in panel.get("targets", [])]
    used = [holder["datasource"] for holder in holders if "datasource" in holder]
    assert used, "no datasource referenced at all"
    for ref in used:
        assert isinstance(ref, dict) and ref.get("type") == "prometheus", ref
        assert ref.get("uid") in provisioned, ref


@pytest.mark.parametrize("path", DASHBOARDS, ids=DASHBOARD_IDS)
def test_every_panel_has_a_title_and_every_query_an_expr(path: Path) -> None:
    """An empty expr is a panel that silently shows nothing."""
    for panel in iter_panels(load_dashboard(path)):
        assert panel.get("title"), panel.get("id")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} has no query"
        for target in targets:
            assert isinstance(target.get("expr"), str) and target["expr"].strip(), panel["title"]
        ref_ids = [target.get("refId") for target in targets]
        assert len(set(ref_ids)) == len(ref_ids), f"panel {panel['title']!r} repeats a refId"


def test_template_variables_are_used_only_in_regex_matchers() -> None:
    """Multi-value and "All" expand to a regex (a|b, .*): with `=` they match nothing."""
    wrong = [
        (name, title, match.group(0))
        for name, title, expr in iter_raw_panel_queries()
        for match in _VARIABLE_USE.finditer(expr)
        if match.group(2) not in ("=~", "!~")
    ]
    assert wrong == []


def test_substituted_queries_are_plain_promql() -> None:
    """Every variable and interval macro is replaced, so the query runs on Prometheus as is."""
    leftovers = [(name, title, expr) for name, title, expr in iter_panel_queries() if "$" in expr or "[[" in expr]
    assert leftovers == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=DASHBOARD_IDS)
def test_panels_query_only_exported_metrics_and_labels(path: Path, series: dict[str, frozenset[str]]) -> None:
    """Each panel names metrics and labels that shared/metrics.py defines."""
    queries = [(title, expr) for name, title, expr in iter_panel_queries() if name == path.name]
    assert queries
    problems = [f"{title}: {problem}" for title, expr in queries for problem in query_problems(expr, series)]
    assert problems == []


def test_alerts_query_only_exported_metrics_and_labels(series: dict[str, frozenset[str]]) -> None:
    """Each alert names metrics and labels that shared/metrics.py defines (plus `up`)."""
    alerts = iter_alert_exprs()
    assert len(alerts) >= 7
    allowed = {**series, **ALERT_ONLY_SERIES}
    problems = [f"{alert}: {problem}" for alert, expr in alerts for problem in query_problems(expr, allowed)]
    assert problems == []


def test_variable_queries_name_an_exported_metric_and_label(series: dict[str, frozenset[str]]) -> None:
    """label_values(metric, label) on a missing metric or label leaves the dropdown empty."""
    queries = iter_variable_queries()
    assert queries
    for name, variable, query in queries:
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        assert match, f"{name} ${variable}: expected label_values(metric, label), got {query!r}"
        selector, label = match.groups()
        assert query_problems(selector, series) == [], (name, variable)
        (metric,) = metric_names(selector)
        assert label in series[metric], f"{name} ${variable}: {metric} has no label {label!r}"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("rate(dialer_calls_totl[5m])", "unknown metric 'dialer_calls_totl'"),
        ('sum(dialer_calls_total{outcom="answered"})', "dialer_calls_total has no label 'outcom'"),
        ("sum by (campaing) (dialer_calls_total)", "groups by 'campaing'"),
        ("histogram_quantile(0.9, sum by (trunk) (rate(dialer_setup_time_seconds_bucket[5m])))", "without `le`"),
        ("dialer_talk_time_seconds", "unknown metric 'dialer_talk_time_seconds'"),
        ("vector(1)", "references no metric"),
    ],
)
def test_the_checker_catches_what_it_claims(expr: str, expected: str, series: dict[str, frozenset[str]]) -> None:
    """The checks above pass only because the queries are right, not because the parser is blind."""
    assert any(expected in problem for problem in query_problems(expr, series)), query_problems(expr, series)


def test_the_checker_reads_names_not_functions_keywords_or_labels(series: dict[str, frozenset[str]]) -> None:
    """Functions, keywords, grouping labels, durations and strings are not taken for metrics."""
    expr = (
        'sum by (trunk) (increase(dialer_calls_total{outcome="answered"}[1h] offset 5m)) '
        "/ ignoring (code) group_left sum(rate(dialer_sip_responses_total[10m:1m])) "
        "and on () (sum(dialer_live_calls) or vector(0)) < bool 1e3"
    )
    assert metric_names(expr) == {"dialer_calls_total", "dialer_sip_responses_total", "dialer_live_calls"}
    assert query_problems(expr, series) == []
