"""Render the Helm chart with real helm and read what came out."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from tests.deploy.tools import CHART, helm, run_ok

RELEASE: Final = "callscope"
NAMESPACE: Final = "calls"
CI_VALUES: Final = CHART / "ci" / "ci-values.yaml"
EXISTING_SECRETS_VALUES: Final = CHART / "ci" / "existing-secrets-values.yaml"

Manifest = dict[str, Any]


def template(*values: Path, sets: Mapping[str, str] | None = None) -> str:
    """`helm template` of the chart: the manifests as one multi-document YAML text."""
    args = [helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values:
        args += ["--values", str(path)]
    for key, value in (sets or {}).items():
        args += ["--set-string", f"{key}={value}"]
    return run_ok(args)


def parse(rendered: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@dataclass(frozen=True)
class Rendered:
    """The manifests of one render, with the look-ups the tests need."""

    manifests: list[Manifest]

    def all(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str, component: str | None = None) -> Manifest:
        found = [
            m
            for m in self.all(kind)
            if component is None
            or m["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} {component or ''}, got {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> Manifest:
        found = [m for m in self.all(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
        return found[0]

    def pod_specs(self) -> Iterator[tuple[str, Manifest]]:
        """(kind/name, pod spec) of every workload."""
        for manifest in self.manifests:
            if manifest["kind"] in ("Deployment", "Job"):
                name = f"{manifest['kind']}/{manifest['metadata']['name']}"
                yield name, manifest["spec"]["template"]["spec"]


def container(workload: Manifest) -> Manifest:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, [c["name"] for c in containers]
    only: Manifest = containers[0]
    return only


def named_port(spec: Manifest, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in spec.get("ports", [])}
    assert name in ports, f"no port named {name} in {ports}"
    return int(ports[name])
