"""The Helm chart as real helm and the Kubernetes schemas see it: it lints, renders with both
CI value sets, every rendered manifest validates (strictly: no unknown field) against the
oldest and the newest Kubernetes the chart supports, and bad values are refused."""

from pathlib import Path
from typing import Final

import pytest

from tests.deploy.chart import CI_VALUES, EXISTING_SECRETS_VALUES, parse, template
from tests.deploy.tools import CHART, helm, run, run_ok, venv_tool

pytestmark = pytest.mark.e2e

# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS: Final = ("1.25.0", "1.37.0")


def _validate(manifests: Path, version: str) -> tuple[int, str]:
    done = run(
        [venv_tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, str(manifests)]
    )
    return done.returncode, done.stdout + done.stderr


def test_chart_lints_strictly() -> None:
    out = run_ok([helm(), "lint", "--strict", str(CHART), "--values", str(CI_VALUES)])
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize("values", [CI_VALUES, EXISTING_SECRETS_VALUES], ids=["own", "existing"])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_manifest_validates_against_the_kubernetes_schema(
    values: Path, version: str, tmp_path: Path
) -> None:
    rendered = template(values)
    kinds = sorted({m["kind"] for m in parse(rendered)})
    assert {"ConfigMap", "Deployment", "Service"} <= set(kinds)
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(rendered)
    status, report = _validate(manifests, version)
    assert status == 0, report
    assert "ERROR" not in report


def test_the_schema_check_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The validation above can fail: a field Kubernetes does not know is an error."""
    rendered = template(CI_VALUES)
    broken = rendered.replace('args: ["serve"]', 'args: ["serve"]\n          probe: /healthz', 1)
    assert broken != rendered
    manifests = tmp_path / "broken.yaml"
    manifests.write_text(broken)
    status, report = _validate(manifests, KUBERNETES_VERSIONS[-1])
    assert status != 0
    assert "'probe' was unexpected" in report


@pytest.mark.parametrize(
    ("setting", "refused"),
    [
        ("config.CALLSCOPE_PORT=9000", "not"),  # set by the chart from api.port
        ("config.CALLSCOPE_INGEST_TOKENS=abc", "not"),  # a secret, never in the ConfigMap
        ("config.log_level=DEBUG", "does not match pattern"),
        ("api.replicas=3", "additional properties 'replicas' not allowed"),
    ],
)
def test_values_outside_the_schema_are_refused(setting: str, refused: str) -> None:
    done = run(
        [
            helm(),
            "template",
            "callscope",
            str(CHART),
            "--values",
            str(CI_VALUES),
            "--set-string",
            setting,
        ]
    )
    assert done.returncode != 0
    assert refused in done.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"auth.ingestTokens[0]": "i", "auth.supervisorTokens[0]": "s"}, "database.url"),
        ({"database.url": "postgresql://db/callscope"}, "auth.ingestTokens"),
    ],
)
def test_a_release_without_database_or_tokens_is_refused(
    values: dict[str, str], message: str
) -> None:
    args = [helm(), "template", "callscope", str(CHART)]
    for key, value in values.items():
        args += ["--set-string", f"{key}={value}"]
    done = run(args)
    assert done.returncode != 0
    assert message in done.stderr
