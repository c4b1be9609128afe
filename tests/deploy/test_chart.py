"""The Helm chart renders what it promises: offline, through helm-python-sdk (the Helm v4 SDK).

scripts/check-deploy.sh additionally lints the chart and validates every rendered object against
the Kubernetes schemas; these tests pin the chart's behaviour.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from gateway import settings as gateway_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "gateway"
PRODUCTION = CHART / "ci" / "production-values.yaml"
RELEASE = "gateway"
CONFIG_PATH = "/etc/gateway/config.toml"

Objects = dict[tuple[str, str], dict[str, Any]]


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def production_values() -> dict[str, Any]:
    return helm.values_from_yaml(PRODUCTION.read_text())


def render_raw(chart: helm.Chart, values: dict[str, Any] | None = None) -> dict[str, str]:
    return chart.render(values or {}, name=RELEASE, namespace="gateway", is_install=True)


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> Objects:
    """Every rendered object, by (kind, name)."""
    objects: Objects = {}
    for template, text in render_raw(chart, values).items():
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in objects, f"{key} rendered twice"
                objects[key] = doc
    return objects


def merged(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(base))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def kinds(objects: Objects) -> set[str]:
    return {kind for kind, _ in objects}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env(workload: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container(workload).get("env", [])}


def env_from_secrets(workload: dict[str, Any]) -> list[str]:
    return [
        src["secretRef"]["name"] for src in container(workload)["envFrom"] if "secretRef" in src
    ]


def config_checksum(objects: Objects) -> str:
    annotations = objects["Deployment", RELEASE]["spec"]["template"]["metadata"]["annotations"]
    checksum: str = annotations["checksum/config"]
    return checksum


# --- SQLite (the defaults) ---------------------------------------------------------------------


def test_default_values_run_one_sqlite_replica_on_a_volume(chart: helm.Chart) -> None:
    objects = render(chart)
    api = objects["Deployment", RELEASE]
    assert api["spec"]["replicas"] == 1
    assert api["spec"]["strategy"]["type"] == "Recreate"  # two pods never share the file
    assert "HorizontalPodAutoscaler" not in kinds(objects)
    assert "PodDisruptionBudget" not in kinds(objects)
    assert "Job" not in kinds(objects)  # the single pod migrates at start-up
    assert ("Deployment", f"{RELEASE}-worker") not in objects

    claim = objects["PersistentVolumeClaim", f"{RELEASE}-data"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-data"
    mounts = {m["mountPath"]: m["name"] for m in container(api)["volumeMounts"]}
    assert mounts["/data"] == "data"

    secret = objects["Secret", RELEASE]
    assert secret["stringData"]["GATEWAY_DATABASE__URL"] == "sqlite:////data/gateway.db"
    assert env_from_secrets(api) == [RELEASE]
    assert env(api)["GATEWAY_STORAGE__URL"] == "file:///data/blobs"
    assert "GATEWAY_JOBS__RUNNER" not in env(api)


def test_sqlite_mode_ignores_autoscaling_and_says_so(chart: helm.Chart) -> None:
    values = {"autoscaling": {"enabled": True}, "podDisruptionBudget": {"enabled": True}}
    objects = render(chart, values)
    assert objects["Deployment", RELEASE]["spec"]["replicas"] == 1
    assert "HorizontalPodAutoscaler" not in kinds(objects)
    assert "PodDisruptionBudget" not in kinds(objects)
    notes = render_raw(chart, values)["gateway/templates/NOTES.txt"]
    assert "SQLite mode" in notes
    assert "autoscaling.enabled is IGNORED" in notes


@pytest.mark.parametrize("replicas", [2, 3])
def test_sqlite_mode_refuses_more_than_one_replica(chart: helm.Chart, replicas: int) -> None:
    with pytest.raises(helm.HelmRenderError, match=f"replicaCount={replicas} needs PostgreSQL"):
        render(chart, {"replicaCount": replicas})


def test_sqlite_mode_refuses_a_worker(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"worker\.enabled needs PostgreSQL"):
        render(chart, {"worker": {"enabled": True}})


def test_sqlite_with_existing_secret_sets_the_database_url_itself(chart: helm.Chart) -> None:
    objects = render(chart, {"existingSecret": "mine"})
    assert "Secret" not in kinds(objects)
    api = objects["Deployment", RELEASE]
    assert env_from_secrets(api) == ["mine"]
    assert env(api)["GATEWAY_DATABASE__URL"] == "sqlite:////data/gateway.db"


# --- PostgreSQL + S3 (ci/production-values.yaml) -----------------------------------------------


def test_production_values_scale_out(chart: helm.Chart, production_values: dict[str, Any]) -> None:
    objects = render(chart, production_values)
    api = objects["Deployment", RELEASE]
    # The autoscaler owns the replica count (a rendered count would reset it on every upgrade).
    assert "replicas" not in api["spec"]
    hpa = objects["HorizontalPodAutoscaler", RELEASE]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 3
    assert hpa["spec"]["maxReplicas"] >= 3
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": RELEASE,
    }
    assert api["spec"]["strategy"]["type"] == "RollingUpdate"
    assert objects["PodDisruptionBudget", RELEASE]["spec"]["minAvailable"] == 2

    without_hpa = render(chart, merged(production_values, autoscaling={"enabled": False}))
    assert without_hpa["Deployment", RELEASE]["spec"]["replicas"] == 3
    assert "HorizontalPodAutoscaler" not in kinds(without_hpa)


def test_production_values_use_the_existing_secret_and_no_volume(
    chart: helm.Chart, production_values: dict[str, Any]
) -> None:
    objects = render(chart, production_values)
    assert "PersistentVolumeClaim" not in kinds(objects)
    assert "Secret" not in kinds(objects)  # existingSecret: the chart makes none
    api = objects["Deployment", RELEASE]
    worker = objects["Deployment", f"{RELEASE}-worker"]
    job = objects["Job", f"{RELEASE}-migrate"]
    for workload in (api, worker, job):
        assert env_from_secrets(workload) == ["gateway-env"]
        assert "GATEWAY_DATABASE__URL" not in env(workload)  # from the Secret only
        assert env(workload)["GATEWAY_STORAGE__URL"] == "s3://seedance-videos/gateway"
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_production_worker_runs_the_job_runner_and_api_pods_do_not(
    chart: helm.Chart, production_values: dict[str, Any]
) -> None:
    objects = render(chart, production_values)
    api = objects["Deployment", RELEASE]
    worker = objects["Deployment", f"{RELEASE}-worker"]
    assert container(worker)["args"] == ["--config", CONFIG_PATH, "worker"]
    assert env(api)["GATEWAY_JOBS__RUNNER"] == "false"
    assert "GATEWAY_JOBS__RUNNER" not in env(worker)
    worker_labels = worker["spec"]["selector"]["matchLabels"]
    api_labels = api["spec"]["selector"]["matchLabels"]
    assert worker_labels["app.kubernetes.io/component"] == "worker"
    assert api_labels["app.kubernetes.io/component"] == "api"
    # The Service must not send traffic to worker pods.
    service_selector = objects["Service", RELEASE]["spec"]["selector"]
    assert service_selector == api_labels

    no_worker = render(chart, merged(production_values, worker={"enabled": False}))
    assert ("Deployment", f"{RELEASE}-worker") not in no_worker
    assert "GATEWAY_JOBS__RUNNER" not in env(no_worker["Deployment", RELEASE])


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(
    chart: helm.Chart, production_values: dict[str, Any]
) -> None:
    objects = render(chart, production_values)
    job = objects["Job", f"{RELEASE}-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert container(job)["args"] == ["--config", CONFIG_PATH, "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # Hooks run before the release's own ConfigMap exists: the Job reads a hook copy, made first.
    config_volume = next(
        v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
    )
    hook_config = objects["ConfigMap", config_volume["configMap"]["name"]]
    annotations = hook_config["metadata"]["annotations"]
    assert "pre-install" in annotations["helm.sh/hook"]
    assert int(annotations["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert hook_config["data"] == objects["ConfigMap", RELEASE]["data"]

    # With a chart-made Secret, the hook gets its own copy holding the database URL.
    own_secret = merged(
        production_values, existingSecret="", database={"url": "postgresql://u:p@db/gw"}
    )
    objects = render(chart, own_secret)
    job = objects["Job", f"{RELEASE}-migrate"]
    hook_secret = objects["Secret", env_from_secrets(job)[0]]
    assert "pre-install" in hook_secret["metadata"]["annotations"]["helm.sh/hook"]
    assert hook_secret["stringData"] == {"GATEWAY_DATABASE__URL": "postgresql://u:p@db/gw"}


def test_shared_file_storage_needs_a_read_write_many_volume(chart: helm.Chart) -> None:
    postgres = {"database": {"url": "postgresql://u:p@db/gw"}, "replicaCount": 2}
    with pytest.raises(helm.HelmRenderError, match="ReadWriteMany"):
        render(chart, postgres)
    objects = render(chart, {**postgres, "persistence": {"accessModes": ["ReadWriteMany"]}})
    assert objects["Deployment", RELEASE]["spec"]["replicas"] == 2
    assert objects["PersistentVolumeClaim", f"{RELEASE}-data"]["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]


# --- configuration -----------------------------------------------------------------------------


def test_config_checksum_follows_the_config(chart: helm.Chart) -> None:
    base = config_checksum(render(chart))
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert config_checksum(render(chart)) == base  # deterministic
    changed = config_checksum(render(chart, {"config": {"log": {"level": "debug"}}}))
    assert changed != base
    # A change outside the ConfigMap leaves it alone.
    assert config_checksum(render(chart, {"resources": {"limits": {"memory": "1Gi"}}})) == base


def test_config_toml_is_what_the_gateway_loads(chart: helm.Chart, tmp_path: Path) -> None:
    values = {
        "config": {
            "server": {"max_body_bytes": 1048576, "public_url": "https://gw.example"},
            "upstream": {"timeout": 12.5, "retries": 5},
            "requests": {"model_aliases": {"fast": "doubao-seedance-2-0-fast-260128"}},
            "log": {"level": "debug", "format": "text"},
        }
    }
    objects = render(chart, values)
    text = objects["ConfigMap", RELEASE]["data"]["config.toml"]
    assert "max_body_bytes = 1048576\n" in text  # an integer, not Helm's 1.048576e+06
    path = tmp_path / "config.toml"
    path.write_text(text)
    loaded = gateway_settings.load_settings(path, environ={})
    assert loaded.server.max_body_bytes == 1048576
    assert loaded.server.public_url == "https://gw.example"
    assert loaded.upstream.timeout == 12.5
    assert loaded.upstream.retries == 5
    assert dict(loaded.requests.model_aliases) == {"fast": "doubao-seedance-2-0-fast-260128"}
    assert (loaded.log.level, loaded.log.format) == ("debug", "text")

    api = objects["Deployment", RELEASE]
    assert container(api)["args"][:3] == ["--config", CONFIG_PATH, "serve"]
    mounts = {m["mountPath"]: m for m in container(api)["volumeMounts"]}
    assert mounts["/etc/gateway"]["readOnly"] is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"config": {"jobs": {"runner": False}}}, "nothing would run the background jobs"),
        ({"config": {"database": {"url": "sqlite:///x.db"}}}, "set the top-level database.url"),
        ({"config": {"storage": {"url": "file:///x"}}}, "set the top-level storage.url"),
        ({"config": {"server": {"port": 9000}}}, "set containerPort instead"),
    ],
)
def test_settings_the_environment_would_override_are_refused(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(chart, values)


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCoutn": 2},
        {"image": {"tga": "1.0"}},
        {"autoscaling": {"enabeld": True}},
        {"config": {"upstream": {"base_ulr": "https://x"}}},
        {"config": {"upstream": {"timeout": "slow"}}},
        {"config": {"nosuchsection": {}}},
        {"storage": {"url": "gs://bucket"}},
    ],
)
def test_schema_rejects_typos(chart: helm.Chart, values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        render(chart, values)


def _schema_type(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return "object"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names[hint]


def test_schema_config_section_mirrors_the_gateway_settings() -> None:
    """values.schema.json's `config` must list exactly the gateway's settings (with their types).

    A setting added to gateway/settings.py needs its line in values.schema.json, or the chart
    would refuse it as a typo: `python scripts/sync_chart_schema.py` writes it.
    """
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]["properties"]
    expected: dict[str, dict[str, str]] = {}
    hints = typing.get_type_hints(gateway_settings.Settings)
    for section in gateway_settings.SECTIONS:
        cls = hints[section]
        field_hints = typing.get_type_hints(cls)
        expected[section] = {
            f.name: _schema_type(field_hints[f.name]) for f in dataclasses.fields(cls)
        }
    actual = {
        section: {key: prop["type"] for key, prop in spec["properties"].items()}
        for section, spec in config.items()
    }
    missing = {
        f"config.{section}.{key}": kind
        for section, fields in expected.items()
        for key, kind in fields.items()
        if actual.get(section, {}).get(key) != kind
    }
    extra = sorted(
        f"config.{section}.{key}"
        for section, fields in actual.items()
        for key in fields
        if key not in expected.get(section, {})
    )
    fix = "run scripts/sync_chart_schema.py to update helm/gateway/values.schema.json"
    assert not missing, f"settings missing from the chart's schema: {missing}; {fix}"
    assert not extra, f"the chart's schema lists settings the gateway lacks: {extra}; {fix}"
    for section, spec in config.items():
        assert spec.get("additionalProperties") is False, f"config.{section} must be strict"


# --- security ----------------------------------------------------------------------------------


def _pod_specs(objects: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    for (kind, name), obj in objects.items():
        if kind in ("Deployment", "Job"):
            yield f"{kind}/{name}", obj["spec"]["template"]["spec"]


def test_every_pod_runs_non_root_on_a_read_only_root(
    chart: helm.Chart, production_values: dict[str, Any]
) -> None:
    dockerfile_user = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_user is not None
    uid = int(dockerfile_user.group(1))

    pods = [*_pod_specs(render(chart)), *_pod_specs(render(chart, production_values))]
    assert {name for name, _ in pods} >= {
        f"Deployment/{RELEASE}",
        f"Deployment/{RELEASE}-worker",
        f"Job/{RELEASE}-migrate",
    }
    for name, pod in pods:
        pod_ctx = pod["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, name
        assert pod_ctx["runAsUser"] == uid, name
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"]:
            ctx = c["securityContext"]
            assert ctx["runAsNonRoot"] is True, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
            # The only writable places: /data and /tmp (TMPDIR), both volumes.
            writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
            assert writable == {"/data", "/tmp"}, name
            assert {e["name"]: e.get("value") for e in c["env"]}["TMPDIR"] == "/tmp", name


def test_probes_and_resources(chart: helm.Chart) -> None:
    api = container(render(chart)["Deployment", RELEASE])
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["resources"]["requests"] and api["resources"]["limits"]


# --- monitoring --------------------------------------------------------------------------------


def test_monitoring_objects_are_off_by_default(chart: helm.Chart) -> None:
    assert not {"ServiceMonitor", "PrometheusRule"} & kinds(render(chart))


def test_service_monitor_scrapes_the_api_service(chart: helm.Chart) -> None:
    objects = render(chart, {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}})
    monitor = objects["ServiceMonitor", RELEASE]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert (
        monitor["spec"]["selector"]["matchLabels"]
        == objects["Service", RELEASE]["spec"]["selector"]
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "http"


def test_prometheus_rule_reads_files_alerts_yaml_then_values(tmp_path: Path) -> None:
    copy = tmp_path / "gateway"
    shutil.copytree(CHART, copy)
    (copy / "files").mkdir(exist_ok=True)
    alerts = copy / "files" / "alerts.yaml"
    group = {"name": "g", "rules": [{"alert": "A", "expr": "vector(1)", "for": "1m"}]}
    extra = {"name": "extra", "rules": [{"record": "r", "expr": "vector(2)"}]}
    enabled = {"prometheusRule": {"enabled": True, "groups": [extra]}}

    alerts.unlink(missing_ok=True)
    with helm.Chart.load(copy) as without_file:
        rule = render(without_file, enabled)["PrometheusRule", RELEASE]
        assert rule["spec"]["groups"] == [extra]
        with pytest.raises(helm.HelmRenderError, match="no rules"):
            render(without_file, {"prometheusRule": {"enabled": True}})

    alerts.write_text(
        yaml.safe_dump({"groups": [group]})
        + "# annotations keep Prometheus' own templating:\n"
        + "# {{ $labels.instance }}\n"
    )
    with helm.Chart.load(copy) as with_file:
        rule = render(with_file, enabled)["PrometheusRule", RELEASE]
        assert rule["apiVersion"] == "monitoring.coreos.com/v1"
        assert rule["spec"]["groups"] == [group, extra]
