"""deploy/compose.yaml: valid against the Compose Specification's schema (check-jsonschema's
vendored copy), the topology the issue asks for, and an environment `Settings` accepts, on
the ports nginx and Prometheus use; Prometheus' file passes Debian's promtool."""

import re
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.deploy.compose import COMPOSE_FILE, environment, interpolate, load
from tests.deploy.settings_env import health_get_paths, settings_from, unknown_names
from tests.deploy.tools import DEPLOY, promtool, run, run_ok, venv_tool

pytestmark = pytest.mark.e2e

CALLSCOPE_SERVICES: Final = ("migrate", "api", "worker")
VARIABLES: Final = {
    "CALLSCOPE_INGEST_TOKENS": "ingest-a,ingest-b",
    "CALLSCOPE_SUPERVISOR_TOKENS": "supervisor",
    "POSTGRES_PASSWORD": "pw",
}


def _check_compose_schema(path: Path) -> tuple[int, str]:
    done = run(
        [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(VARIABLES)


def test_compose_file_follows_the_compose_specification() -> None:
    status, report = _check_compose_schema(COMPOSE_FILE)
    assert status == 0, report
    assert "validation done" in report


def test_the_stand_ins_override_follows_the_compose_specification() -> None:
    status, report = _check_compose_schema(DEPLOY / "compose.stand-ins.yaml")
    assert status == 0, report
    assert "validation done" in report


def test_the_stand_ins_override_names_only_services_of_the_stack(compose: dict[str, Any]) -> None:
    override = yaml.safe_load((DEPLOY / "compose.stand-ins.yaml").read_text())
    assert set(override["services"]) <= set(compose["services"])
    stand_ins = {name for name, service in override["services"].items() if "image" in service}
    assert stand_ins == {"postgres", "nginx", "prometheus"}  # the images from Docker Hub


def test_the_schema_check_rejects_an_unknown_service_key(tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text()
    broken = text.replace('    command: ["serve"]\n', '    command: ["serve"]\n    replica: 2\n')
    assert broken != text
    path = tmp_path / "compose.yaml"
    path.write_text(broken)
    status, report = _check_compose_schema(path)
    assert status != 0
    assert "replica" in report


def test_the_stack_has_the_topology_of_the_issue(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker", "nginx", "prometheus"}
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "pgdata" in compose["volumes"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name, command in (("api", "serve"), ("worker", "worker")):
        assert services[name]["command"] == [command]
        assert services[name]["deploy"]["replicas"] == 2
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "./nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    assert services["nginx"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    config = "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
    assert config in services["prometheus"]["volumes"]


def test_callscope_services_share_one_hardened_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {services[name]["image"] for name in CALLSCOPE_SERVICES}
    assert len(images) == 1
    for name in CALLSCOPE_SERVICES:
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]  # noqa: S108 - the container's path
        assert service["cap_drop"] == ["ALL"]
        assert not service["user"].startswith("0")


def test_tokens_must_be_given() -> None:
    with pytest.raises(KeyError, match="CALLSCOPE_INGEST_TOKENS"):
        load({})


@pytest.mark.parametrize("name", CALLSCOPE_SERVICES)
def test_every_environment_name_is_a_setting_and_parses(compose: dict[str, Any], name: str) -> None:
    env = environment(compose["services"][name])
    assert unknown_names(set(env)) == set()
    with settings_from(env) as settings:
        assert settings.database_url == "postgresql://callscope:pw@postgres:5432/callscope"
        assert [t.get_secret_value() for t in settings.ingest_tokens] == ["ingest-a", "ingest-b"]


def test_ports_and_probes_line_up(compose: dict[str, Any]) -> None:
    services = compose["services"]
    with settings_from(environment(services["api"])) as api:
        pass
    with settings_from(environment(services["worker"])) as worker:
        pass
    assert services["api"]["expose"] == [str(api.port)]
    assert worker.worker_metrics_port is not None
    assert services["worker"]["expose"] == [str(worker.worker_metrics_port)]
    check = " ".join(services["api"]["healthcheck"]["test"])
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
    assert url is not None
    assert int(url.group(1)) == api.port
    assert url.group(2) == "/readyz"
    assert url.group(2) in health_get_paths()
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert re.findall(r"^\s*server (\S+);", nginx, re.MULTILINE) == [f"api:{api.port}"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: (sd["names"], sd["port"], job["metrics_path"])
        for job in scrape["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
    }
    assert targets == {
        "callscope-api": (["api"], api.port, "/metrics"),
        "callscope-worker": (["worker"], worker.worker_metrics_port, "/metrics"),
    }
    assert "/metrics" in health_get_paths()


def test_stop_grace_covers_the_drain(compose: dict[str, Any]) -> None:
    for name in ("api", "worker"):
        service = compose["services"][name]
        with settings_from(environment(service)) as settings:
            grace = float(service["stop_grace_period"].removesuffix("s"))
            assert grace > settings.shutdown_grace >= settings.drain_seconds


def test_prometheus_config_passes_promtool() -> None:
    path = DEPLOY / "prometheus" / "prometheus.yml"
    out = run_ok([promtool(), "check", "config", str(path)])
    assert "SUCCESS" in out


def test_interpolation_follows_compose() -> None:
    assert interpolate("${A:-x}/${B-y}/${C}", {"C": "c"}) == "x/y/c"
    assert interpolate("${A:-x}", {"A": "a"}) == "a"
    with pytest.raises(KeyError, match="A is required: say so"):
        interpolate("${A:?say so}", {})
