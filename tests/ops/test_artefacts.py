"""The operator artefacts only promise what the gateway exports (fast and offline).

- helm/gateway/files/alerts.yaml: a valid Prometheus rule file (`promtool check rules`), whose
  alerts fire when they should (`promtool test rules tests/ops/alerts_test.yaml`), and whose
  expressions name only series gateway/metrics.py exports (plus `up`);
- helm/gateway/dashboards/gateway.json: a Grafana dashboard with the panels operators rely on,
  every query naming only exported series and filtered by the dashboard's job/instance variables;
- the chart ships both: the PrometheusRule carries the file's groups untouched, and the opt-in
  dashboard ConfigMap carries the JSON for Grafana's sidecar.

promtool comes with Debian's `prometheus` package (.ci/run installs it); without it these tests
fail rather than skip, so a CI image that lost it cannot pass silently.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from gateway.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "gateway"
ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "dashboards" / "gateway.json"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yaml")

# Labels Prometheus adds to every scraped series (static configs, kubernetes SD / ServiceMonitor).
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "service", "endpoint", "container", "node"}
)
# ProcessCollector exports these on Linux only; named here so the check does not depend on the OS.
PROCESS_SERIES = frozenset(
    {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
    }
)
# Series names each metric type puts on the wire (prometheus_client's text exposition).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "untyped": ("",),
}
PROMQL_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "inf",
        "nan",
    }
)
SEVERITIES = frozenset({"critical", "warning", "info"})

REQUIRED_PANELS = frozenset(
    {
        "Request rate by route",
        "Request latency by route (p50/p95/p99)",
        "HTTP 5xx ratio",
        "Spend per model (USD/h)",
        "Spend per team (USD/h)",
        "Budget headroom (remaining / limit)",
        "Cache hit ratio",
        "Cache savings (range)",
        "Job generation duration (p50/p95)",
        "Jobs by state",
        "Persistence lag (p50/p95)",
        "Download failures by reason",
        "Videos lost and expired",
        "Upstream requests by outcome",
        "Upstream latency by operation (p50/p95)",
        "Upstream retries by operation",
        "Upstream requests in flight",
        "Process CPU",
        "Process memory",
        "Webhook deliveries by outcome",
        "Webhook backlog (oldest pending age)",
        "Webhook endpoints disabled",
    }
)


# --- what the gateway exports --------------------------------------------------------------


@cache
def exported() -> dict[str, frozenset[str]]:
    """Every series name a gateway (with team labels on) puts on /metrics -> its label names.

    Built from the real Metrics object, so a metric renamed in gateway/metrics.py breaks the
    artefacts' tests until they follow."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, team_labels=True)
    labels_of: dict[str, frozenset[str]] = {}
    for collector in [*vars(metrics).values(), *vars(metrics.webhooks).values()]:
        if isinstance(collector, MetricWrapperBase):
            # prometheus_client keeps label names on the wrapper; there is no public accessor.
            labels_of[collector._name] = frozenset(collector._labelnames)
    series: dict[str, frozenset[str]] = {name: frozenset() for name in PROCESS_SERIES}
    series["up"] = frozenset()
    for family in registry.collect():
        labels = labels_of.get(family.name, frozenset())
        for suffix in SUFFIXES[family.type]:
            name = family.name + suffix
            series[name] = labels | {"le"} if suffix == "_bucket" else labels
        for sample in family.samples:
            series.setdefault(sample.name, frozenset(sample.labels))
    return series


# --- reading PromQL ------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")
_SELECTOR = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")


def _without_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers left once strings, label matchers,
    range/subquery brackets, grouping clauses, Grafana variables and durations are removed, and
    that are neither function calls nor PromQL keywords."""
    text = _without_strings(expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for match in _GROUPING.finditer(_without_strings(expr)):
        labels |= {label.strip() for label in match.group(1).split(",") if label.strip()}
    return labels


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, raw matcher text) for every `name{...}` in the expression."""
    return [(m.group(1), m.group(2)) for m in _SELECTOR.finditer(expr)]


def problems_with(expr: str) -> list[str]:
    """Unknown series names and unknown label names in one expression."""
    known = exported()
    names = metric_names(expr)
    problems = [f"no metric selected in {expr!r}"] if not names else []
    problems += [
        f"{name!r} is not exported by the gateway" for name in sorted(names - known.keys())
    ]
    labels_in_expr = set(TARGET_LABELS) | {"le"}
    for name in names & known.keys():
        labels_in_expr |= known[name]
    for name, matchers in selectors(_without_strings(expr)):
        for label in _MATCHER.findall(matchers):
            if name in known and label not in known[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {label!r}")
    problems += [
        f"grouping by {label!r}, which none of {sorted(names)} has"
        for label in sorted(grouping_labels(expr) - labels_in_expr)
    ]
    return problems


def test_the_promql_reader_finds_metrics_and_only_metrics() -> None:
    expr = (
        'sum by (route, le) (rate(gateway_http_request_duration_seconds_bucket{job=~"$job",'
        ' route!~"/metrics|/healthz"}[$__rate_interval])) / on (job) group_left (version)'
        " gateway_build_info offset 5m > bool 1e3 and up unless absent(process_open_fds)"
        ' or histogram_quantile(0.95, x:recorded{a="sum(b)"}[5m:1m]) * ${factor}'
    )
    assert metric_names(expr) == {
        "gateway_http_request_duration_seconds_bucket",
        "gateway_build_info",
        "up",
        "process_open_fds",
        "x:recorded",
    }
    assert grouping_labels(expr) == {"route", "le", "job", "version"}


def test_the_known_series_are_what_the_gateway_exports() -> None:
    known = exported()
    for name in (
        "gateway_http_requests_total",
        "gateway_http_request_duration_seconds_bucket",
        "gateway_build_info",
        "gateway_jobs",
        "gateway_budget_remaining_usd",
        "process_cpu_seconds_total",
        "python_gc_collections_total",
        "up",
    ):
        assert name in known
    # a counter is only ever scraped with its _total suffix
    assert "gateway_http_requests" not in known
    assert known["gateway_spend_usd_total"] == {"model", "team"}
    assert problems_with("rate(gateway_http_requests[5m])") == [
        "'gateway_http_requests' is not exported by the gateway"
    ]
    assert problems_with('gateway_jobs{status="queued"}') == ["gateway_jobs has no label 'status'"]
    assert problems_with("sum by (model) (gateway_reserved_usd)") == [
        "grouping by 'model', which none of ['gateway_reserved_usd'] has"
    ]


# --- alerts.yaml ---------------------------------------------------------------------------


def alert_rules() -> Iterator[dict[str, Any]]:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        yield from group["rules"]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: it comes with Debian's `prometheus` package "
            "(apt-get install prometheus; .ci/run installs it in CI)"
        )
    return path


def run_promtool(*args: str) -> None:
    result = subprocess.run(
        [promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_alerts_pass_promtool_check_rules() -> None:
    run_promtool("check", "rules", str(ALERTS.relative_to(ROOT)))


def test_alerts_fire_as_their_unit_tests_expect() -> None:
    run_promtool("test", "rules", str(ALERT_TESTS.relative_to(ROOT)))


def test_alert_expressions_use_only_exported_metrics() -> None:
    problems = [
        f"{rule.get('alert') or rule.get('record')}: {problem}"
        for rule in alert_rules()
        for problem in problems_with(str(rule["expr"]))
    ]
    assert not problems, "\n".join(problems)


def test_every_alert_is_complete() -> None:
    rules = list(alert_rules())
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        name = rule["alert"]
        assert "for" in rule, f"{name}: no `for:`"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name
        expr = str(rule["expr"])
        available = grouping_labels(expr) | {"job", "instance"}
        for text in annotations.values():
            # Prometheus templating, untouched by Helm: {{ $labels.x }} / {{ $value }} only.
            for used in re.findall(r"\$labels\.(\w+)", text):
                assert used in available, f"{name}: $labels.{used} is not in the result"
            assert "{{ .Values" not in text and "{{ .Release" not in text, name


def test_the_alerts_the_issue_asks_for_exist() -> None:
    exprs = {rule["alert"]: str(rule["expr"]) for rule in alert_rules()}
    wanted = {
        "SeedanceGatewayDown": "up",
        "SeedanceGatewayHighHTTP5xxRatio": "gateway_http_requests_total",
        "SeedanceGatewayBudgetNearlyExhausted": "gateway_budget_remaining_usd",
        "SeedanceGatewayBudgetExhausted": "gateway_budget_remaining_usd",
        "SeedanceGatewayVideoLost": "upstream_link_expired",
        "SeedanceGatewayDownloadFailures": "gateway_download_failures_total",
        "SeedanceGatewayPersistenceLagHigh": "gateway_job_persistence_lag_seconds_bucket",
        "SeedanceGatewayDownloadBacklog": 'state="awaiting_download"',
        "SeedanceGatewayUpstreamErrorRate": "server_error|timeout|unreachable",
        "SeedanceGatewayUpstreamAuthOrQuota": "upstream_auth_error",
        "SeedanceGatewayUpstreamClientErrors": 'outcome="client_error"',
        "SeedanceGatewayJobsTimingOut": 'code="timeout"',
        "SeedanceGatewayQueueGrowing": 'state="queued"',
        "SeedanceGatewayWebhookEndpointDisabled": "gateway_webhook_disablements_total",
        "SeedanceGatewayWebhookBacklogOld": "gateway_webhook_oldest_pending_age_seconds",
        "SeedanceGatewayWebhookDeliveriesGivenUp": 'outcome="failed"',
    }
    for alert, fragment in wanted.items():
        assert fragment in exprs.get(alert, ""), alert
    severity = {rule["alert"]: rule["labels"]["severity"] for rule in alert_rules()}
    assert severity["SeedanceGatewayVideoLost"] == "critical"
    assert severity["SeedanceGatewayDown"] == "critical"


# --- the dashboard -------------------------------------------------------------------------


@cache
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found += panel.get("panels", [])  # panels of collapsed rows
    return found


def test_dashboard_is_a_grafana_dashboard_with_variables() -> None:
    board = dashboard()
    assert board["uid"] == "seedance-gateway"
    assert board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    variables = {var["name"]: var for var in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        query = variables[name]["query"]["query"]
        assert query.startswith("label_values(") and query.endswith(f", {name})")
        assert not problems_with(query.removeprefix("label_values(").rsplit(",", 1)[0])
        # "All" must expand to the listed values, not `.*`: up and process_* exist for every
        # job a Prometheus scrapes.
        assert not variables[name].get("allValue")
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_dashboard_has_the_panels_operators_need() -> None:
    titles = {panel["title"] for panel in panels()}
    assert not REQUIRED_PANELS - titles, f"missing panels: {sorted(REQUIRED_PANELS - titles)}"


def test_dashboard_queries_use_only_exported_metrics_filtered_by_the_variables() -> None:
    problems: list[str] = []
    queried = 0
    for panel in panels():
        if panel["type"] == "row":
            continue
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{panel['title']}: no query")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{panel['title']}: not on the ${{datasource}} variable")
        for target in targets:
            expr = target["expr"]
            queried += 1
            problems += [f"{panel['title']}: {problem}" for problem in problems_with(expr)]
            if target.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{panel['title']} {target['refId']}: datasource")
            names = metric_names(expr)
            selected = dict(selectors(expr))
            for name in names:
                matchers = selected.get(name, "")
                if 'job=~"$job"' not in matchers or 'instance=~"$instance"' not in matchers:
                    problems.append(f"{panel['title']}: {name} ignores the job/instance variables")
    assert queried > 30
    assert not problems, "\n".join(problems)


GRAFANA_INTERVALS = {"$__rate_interval": "2m", "$__interval": "30s", "$__range": "6h"}


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each query, with Grafana's variables filled in, parses as PromQL: promtool checks them
    as recording rules."""
    rules = []
    for panel in panels():
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_INTERVALS.items():
                expr = expr.replace(variable, value)
            assert "$__" not in expr, f"{panel['title']}: unhandled Grafana variable in {expr}"
            expr = re.sub(r"\$\{?\w+\}?", "gateway", expr)
            record = f"dashboard:panel_{panel['id']}_{target['refId']}:check"
            rules.append({"record": record, "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", str(path))


def test_dashboard_covers_every_gateway_metric() -> None:
    """A metric the gateway exports but no panel shows is either dead or forgotten."""
    shown: set[str] = set()
    for panel in panels():
        for target in panel.get("targets", []):
            shown |= metric_names(target["expr"])
    families = {
        name.removesuffix("_bucket").removesuffix("_total")
        for name in exported()
        if name.startswith("gateway_") and not name.endswith(("_created", "_sum", "_count"))
    }
    shown_families = {name.removesuffix("_bucket").removesuffix("_total") for name in shown}
    assert not families - shown_families, sorted(families - shown_families)


# --- the chart ships them ------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    rendered = chart.render(values, name="gateway", namespace="gw", is_install=True)
    for template, text in rendered.items():
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects[doc["kind"], doc["metadata"]["name"]] = doc
    return objects


def test_prometheus_rule_carries_alerts_yaml_untouched(chart: helm.Chart) -> None:
    objects = render(chart, {"prometheusRule": {"enabled": True}})
    rule = objects["PrometheusRule", "gateway"]
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


def test_dashboard_configmap_is_off_by_default(chart: helm.Chart) -> None:
    assert ("ConfigMap", "gateway-dashboard") not in render(chart, {})


def test_dashboard_configmap_feeds_grafanas_sidecar(chart: helm.Chart) -> None:
    values = {
        "grafanaDashboard": {
            "enabled": True,
            "annotations": {"grafana_folder": "Gateway"},
            "namespace": "monitoring",
        }
    }
    config_map = render(chart, values)["ConfigMap", "gateway-dashboard"]
    kubernetes_validate.validate(config_map, "1.30", strict=True)
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Gateway"}
    assert config_map["metadata"]["namespace"] == "monitoring"
    (data,) = config_map["data"].values()
    assert json.loads(data) == dashboard()
