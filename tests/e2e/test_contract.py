"""The OpenAPI contract holds: schemathesis, with every check, against a real `callscope
serve`, once with an ingest token and once with a supervisor token, finds nothing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.processes import callscope_process, clean_env, free_port, wait_ready

pytestmark = [pytest.mark.usefixtures("db"), pytest.mark.slow]

TOKENS = {"ingest": "contract-ingest", "supervisor": "contract-supervisor"}
EXAMPLES_PER_OPERATION = 20
SEED = 20261201  # a fixed seed: CI repeats exactly what passed here
# The statuses that stored state, not the schema, decides (422 `sequence_out_of_range`, 416).
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _schemathesis(base: str, token: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--no-color",
    ]
    # Not under coverage: it runs none of callscope's code, only costs the suite time.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    return subprocess.run(
        command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("role", sorted(TOKENS))
def test_schemathesis_finds_no_failure(db_url: str, tmp_path: Path, role: str) -> None:
    port = free_port()
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_INGEST_TOKENS=TOKENS["ingest"],
        CALLSCOPE_SUPERVISOR_TOKENS=TOKENS["supervisor"],
    )
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with callscope_process(["serve", "--port", str(port)], env, tmp_path, log) as process:
        wait_ready(base, process, timeout=60, log=log)
        result = _schemathesis(base, TOKENS[role], tmp_path)
    summary = re.search(r"(\d+) generated, (.*)", result.stdout)
    assert result.returncode == 0, result.stdout[-6000:]
    assert summary is not None
    assert int(summary[1]) > 200  # it really tried
    assert "failure" not in summary[2]
