"""Lint, render and validate the Helm chart offline (called by scripts/check-deploy.sh).

For each scenario below: `helm lint --strict` (through helm-python-sdk, the Helm v4 SDK),
render the templates, parse every object, and validate it with kubernetes-validate's strict
schemas for one Kubernetes version. The Prometheus Operator objects (ServiceMonitor,
PrometheusRule) have no bundled schema: they are checked against the structural subset below
instead. The rendered config.toml must also load with the gateway's own settings loader.
Exits non-zero on any problem.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "gateway"
RELEASE = "gateway"
NAMESPACE = "gateway"

MONITORING: dict[str, Any] = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {
        "enabled": True,
        "groups": [
            {
                "name": "seedance-gateway.check",
                "rules": [
                    {
                        "alert": "SeedanceGatewayDown",
                        "expr": 'up{job="gateway"} == 0',
                        "for": "5m",
                        "labels": {"severity": "critical"},
                        "annotations": {"summary": "{{ $labels.instance }} is down"},
                    }
                ],
            }
        ],
    },
}

# name -> (values files, extra values merged on top)
SCENARIOS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "default (SQLite + PVC)": ([], {}),
    "production (PostgreSQL + S3)": (["ci/production-values.yaml"], {}),
    "production + ServiceMonitor/PrometheusRule": (["ci/production-values.yaml"], MONITORING),
    "SQLite + existingSecret + ingress + monitoring": (
        [],
        {
            "existingSecret": "gateway-env",
            "ingress": {"enabled": True, "tls": [{"secretName": "t", "hosts": ["g.example"]}]},
            **MONITORING,
        },
    ),
    "PostgreSQL + shared file storage (RWX) + worker": (
        [],
        {
            "database": {"url": "postgresql://gw:pw@db:5432/gw"},
            "replicaCount": 2,
            "worker": {"enabled": True},
            "persistence": {"accessModes": ["ReadWriteMany"]},
            "podDisruptionBudget": {"minAvailable": "50%"},
        },
    ),
}

_DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": _STRING_MAP, "matchExpressions": {"type": "array"}},
}
# Structural subsets of the Prometheus Operator CRDs (monitoring.coreos.com/v1), strict on the
# fields this chart writes.
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "selector": _LABEL_SELECTOR,
                    "namespaceSelector": {"type": "object"},
                    "jobLabel": {"type": "string"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port"],
                            "properties": {
                                "port": {"type": "string", "minLength": 1},
                                "path": {"type": "string", "pattern": "^/"},
                                "scheme": {"enum": ["http", "https"]},
                                "interval": {"type": "string", "pattern": _DURATION},
                                "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "interval": {"type": "string", "pattern": _DURATION},
                                "limit": {"type": "integer"},
                                "partial_response_strategy": {"type": "string"},
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["expr"],
                                        "additionalProperties": False,
                                        "oneOf": [
                                            {"required": ["alert"]},
                                            {"required": ["record"]},
                                        ],
                                        "properties": {
                                            "alert": {"type": "string", "minLength": 1},
                                            "record": {"type": "string", "minLength": 1},
                                            "expr": {"type": ["string", "integer"]},
                                            "for": {"type": "string", "pattern": _DURATION},
                                            "keep_firing_for": {
                                                "type": "string",
                                                "pattern": _DURATION,
                                            },
                                            "labels": _STRING_MAP,
                                            "annotations": _STRING_MAP,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


def load_values(files: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """Values as `helm -f FILE... --set-json` would give them (later files win, maps merge)."""
    merged: dict[str, Any] = {}
    for name in files:
        deep_merge(merged, helm.values_from_yaml((CHART / name).read_text()))
    deep_merge(merged, extra)
    return merged


def deep_merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value


def check_scenario(title: str, values: dict[str, Any], kube_version: str) -> list[str]:
    problems = lint(values, kube_version)
    with helm.Chart.load(CHART) as chart:
        try:
            rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as exc:
            return [*problems, f"render failed: {exc}"]
    objects = parse_rendered(rendered, problems)
    seen: set[tuple[str, str]] = set()
    for template, obj in objects:
        kind, name = obj.get("kind", "?"), obj.get("metadata", {}).get("name", "?")
        where = f"{template}: {kind}/{name}"
        if (kind, name) in seen:
            problems.append(f"{where}: rendered twice")
        seen.add((kind, name))
        problems += check_object(where, kind, obj, kube_version)
    print(f"  {title}: {len(objects)} objects: " + ", ".join(sorted(k for k, _ in seen)))
    return problems


def lint(values: dict[str, Any], kube_version: str) -> list[str]:
    """`helm lint --strict`'s warnings and errors."""
    problems: list[str] = []
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{kube_version}.0")
    for message in report["messages"]:
        if message["severity"] >= 2:  # 2 warning, 3 error (1 info: "icon is recommended")
            problems.append(f"helm lint {message['path']}: {message['error'].strip()}")
    if not problems:  # `errors` repeats the error messages; report it only if they were not
        problems += [f"helm lint: {error.strip()}" for error in report["errors"]]
    return problems


def parse_rendered(
    rendered: dict[str, str], problems: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """Every rendered object with its template; what does not parse is added to ``problems``."""
    objects: list[tuple[str, dict[str, Any]]] = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            if "gateway" not in text:
                problems.append("NOTES.txt rendered empty")
            continue
        try:
            docs = [doc for doc in yaml.safe_load_all(text) if doc]
        except yaml.YAMLError as exc:
            problems.append(f"{template}: not YAML: {exc}")
            continue
        objects += [(template, doc) for doc in docs]
    return objects


def check_object(where: str, kind: str, obj: dict[str, Any], kube_version: str) -> list[str]:
    """One object against its schema: a CRD's (and promtool for rules), else Kubernetes'."""
    problems: list[str] = []
    if kind in CRD_SCHEMAS:
        try:
            jsonschema.validate(obj, CRD_SCHEMAS[kind])
        except jsonschema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            problems.append(f"{where}: {path}: {exc.message}")
        if kind == "PrometheusRule":
            problems += check_rules_with_promtool(where, obj["spec"])
        return problems
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        problems.append(f"{where}: {path}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        problems.append(f"{where}: {exc.message} (no schema: unexpected kind)")
    if kind == "ConfigMap" and "config.toml" in obj.get("data", {}):
        problems += check_config_toml(where, obj["data"]["config.toml"])
    return problems


def check_rules_with_promtool(where: str, spec: dict[str, Any]) -> list[str]:
    """`promtool check rules` on the rule groups, where promtool is installed (Debian
    `prometheus`); the structural schema above is the check everywhere else."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(yaml.safe_dump(spec))
        result = subprocess.run(  # noqa: S603 (promtool from PATH, our own temp file)
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        return [f"{where}: promtool check rules: {(result.stdout + result.stderr).strip()}"]
    return []


def check_config_toml(where: str, text: str) -> list[str]:
    """The rendered config.toml is valid TOML that the gateway itself accepts."""
    from gateway.settings import SettingsError, load_settings

    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [f"{where}: config.toml is not TOML: {exc}"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(text)
        try:
            load_settings(path, environ={})
        except SettingsError as exc:
            return [f"{where}: the gateway rejects config.toml: {exc}"]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kube-version", default="1.30", help="Kubernetes schema version")
    args = parser.parse_args()
    print(f"helm SDK {helm.helm_sdk_version()}; Kubernetes schemas {args.kube_version} (strict)")
    if shutil.which("promtool") is None:
        print("promtool not installed: PrometheusRule groups get the structural check only")
    problems: list[str] = []
    for title, (files, extra) in SCENARIOS.items():
        for problem in check_scenario(title, load_values(files, extra), args.kube_version):
            problems.append(f"[{title}] {problem}")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"chart OK: {len(SCENARIOS)} scenarios")
    return 0


if __name__ == "__main__":
    sys.exit(main())
