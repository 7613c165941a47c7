"""The rendered chart against callscope itself: every CALLSCOPE_ name is a field of Settings
and its value parses, the probes hit the app's routes on the port the app listens on, the
grace period covers preStop plus the drain, and the pods run locked down."""

import re
from typing import Final

import pytest
import yaml

from callscope.settings import Settings
from tests.deploy.chart import (
    CI_VALUES,
    EXISTING_SECRETS_VALUES,
    Manifest,
    Rendered,
    container,
    named_port,
    parse,
    template,
)
from tests.deploy.settings_env import (
    PREFIX,
    health_get_paths,
    settings_from,
    unknown_names,
)
from tests.deploy.tools import CHART, DEPLOY

pytestmark = pytest.mark.e2e

_KEY_LINE: Final = re.compile(r"^\s*[A-Za-z_][\w.-]*:")


@pytest.fixture(scope="module")
def chart() -> Rendered:
    return Rendered(parse(template(CI_VALUES)))


@pytest.fixture(scope="module")
def existing() -> Rendered:
    return Rendered(parse(template(EXISTING_SECRETS_VALUES)))


def _env(chart: Rendered, spec: Manifest) -> dict[str, str]:
    """The CALLSCOPE_ environment the container gets: its ConfigMaps, its plain values and
    its Secret references resolved from the rendered Secrets."""
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        env |= chart.named("ConfigMap", source["configMapRef"]["name"])["data"]
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        data = chart.named("Secret", ref["name"])["stringData"]
        if ref["key"] in data:
            env[item["name"]] = data[ref["key"]]
        else:
            assert ref.get("optional") is True, f"{item['name']}: {ref['key']} is not in the Secret"
    return env


def _env_names(spec: Manifest) -> set[str]:
    return {item["name"] for item in spec.get("env", [])}


def test_every_environment_name_is_a_setting(chart: Rendered, existing: Rendered) -> None:
    for rendered in (chart, existing):
        names: set[str] = set()
        for config_map in rendered.all("ConfigMap"):
            names |= set(config_map["data"])
        for _, pod in rendered.pod_specs():
            for spec in pod["containers"]:
                names |= _env_names(spec)
        assert names, "no environment rendered"
        assert {n for n in names if not n.startswith(PREFIX)} == set()
        assert unknown_names(names) == set()


@pytest.mark.parametrize("component", ["api", "worker", "migrations"])
def test_each_container_gets_valid_settings(chart: Rendered, component: str) -> None:
    kind = "Job" if component == "migrations" else "Deployment"
    spec = container(chart.one(kind, component))
    with settings_from(_env(chart, spec)) as settings:
        assert settings.database_url == "postgresql://callscope:secret@postgres:5432/callscope"
        if component != "migrations":
            tokens = [t.get_secret_value() for t in settings.ingest_tokens]
            assert tokens == ["ingest-token-a", "ingest-token-b"]
            assert [t.get_secret_value() for t in settings.supervisor_tokens] == [
                "supervisor-token"
            ]
            assert settings.host == "0.0.0.0"  # noqa: S104 - a pod serves on its own address


def test_api_probes_and_ports_match_the_app(chart: Rendered) -> None:
    deployment = chart.one("Deployment", "api")
    spec = container(deployment)
    with settings_from(_env(chart, spec)) as settings:
        assert named_port(spec, "http") == settings.port
    probes = {kind: spec[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert {p["path"] for p in probes.values()} <= health_get_paths()
    assert spec["startupProbe"]["httpGet"]["path"] in health_get_paths()
    assert {p["port"] for p in probes.values()} == {"http"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == settings.port
    assert annotations["prometheus.io/path"] in health_get_paths()
    service = chart.one("Service", "api")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert service["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_worker_metrics_port_is_the_one_it_serves(chart: Rendered) -> None:
    deployment = chart.one("Deployment", "worker")
    spec = container(deployment)
    with settings_from(_env(chart, spec)) as settings:
        assert settings.worker_metrics_port is not None
        assert named_port(spec, "metrics") == settings.worker_metrics_port
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == settings.worker_metrics_port
        probe = " ".join(spec["livenessProbe"]["exec"]["command"])
        assert f'("127.0.0.1", {settings.worker_metrics_port})' in probe


def test_the_grace_period_covers_prestop_and_the_drain(chart: Rendered) -> None:
    api = chart.one("Deployment", "api")
    spec = container(api)
    with settings_from(_env(chart, spec)) as settings:
        pass
    command = spec["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    readiness = spec["readinessProbe"]
    # The pod is seen unready while it still serves: within the drain window.
    assert readiness["periodSeconds"] * readiness["failureThreshold"] <= settings.drain_seconds
    assert settings.drain_seconds < settings.shutdown_grace
    grace = api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + settings.shutdown_grace
    worker = chart.one("Deployment", "worker")
    worker_grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert worker_grace >= settings.shutdown_grace


def test_the_platform_pieces_are_there(chart: Rendered) -> None:
    api = chart.one("Deployment", "api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in api["spec"]  # the HPA owns the count
    hpa = chart.one("HorizontalPodAutoscaler", "api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": api["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = chart.one("PodDisruptionBudget", "api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert chart.one("Deployment", "worker")["spec"]["replicas"] >= 1
    job = chart.one("Job", "migrations")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    assert container(job)["args"] == ["migrate"]


def test_tokens_live_in_a_secret_and_settings_in_a_configmap(chart: Rendered) -> None:
    config = chart.one("ConfigMap")["data"]
    assert not [name for name in config if "TOKEN" in name or name.endswith("DATABASE_URL")]
    for _, pod in chart.pod_specs():
        for spec in pod["containers"]:
            for item in spec.get("env", []):
                if "TOKEN" in item["name"] or item["name"].endswith("DATABASE_URL"):
                    assert "secretKeyRef" in item["valueFrom"], item["name"]


def test_migrations_hook_reads_its_url_from_a_hook_secret_created_first(chart: Rendered) -> None:
    job = chart.one("Job", "migrations")
    ref = container(job)["env"][0]["valueFrom"]["secretKeyRef"]
    secret = chart.named("Secret", ref["name"])
    weight = int(secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"


def test_existing_secrets_are_referenced_not_created(existing: Rendered) -> None:
    assert existing.all("Secret") == []
    assert existing.all("HorizontalPodAutoscaler") == existing.all("PodDisruptionBudget") == []
    spec = container(existing.one("Deployment", "api"))
    refs = {i["name"]: i["valueFrom"]["secretKeyRef"] for i in spec["env"] if "valueFrom" in i}
    assert refs["CALLSCOPE_DATABASE_URL"] == {"name": "callscope-database", "key": "url"}
    assert refs["CALLSCOPE_INGEST_TOKENS"]["name"] == "callscope-tokens"


def test_every_pod_runs_non_root_read_only_with_resources(chart: Rendered) -> None:
    user = _dockerfile_user()
    for name, pod in chart.pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == user, name
        assert pod["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for spec in pod["containers"]:
            security = spec["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert set(spec["resources"]) == {"requests", "limits"}, name
            mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], name  # noqa: S108 - the pod's path


def _dockerfile_user() -> int:
    """The numeric user the image's last stage runs as."""
    users = re.findall(r"^USER (\d+):\d+$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert users, "the Dockerfile sets no numeric USER"
    return int(users[-1])


def test_every_value_is_documented() -> None:
    """values.yaml: a comment right above every key, and each key known to the schema."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = [
        line.strip()
        for index, line in enumerate(lines)
        if _KEY_LINE.match(line) and not lines[index - 1].lstrip().startswith("#")
    ]
    assert undocumented == []
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert set(values) == set(schema["properties"])
    assert unknown_names(set(values["config"])) == set()


def test_the_default_config_builds_settings() -> None:
    """The chart's defaults in values.yaml parse as Settings on their own."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    config = {name: str(value) for name, value in values["config"].items()}
    with settings_from(config) as settings:
        assert isinstance(settings, Settings)
        assert settings.ai_provider == "local"
