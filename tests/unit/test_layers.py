"""The calls domain does not reach into the AI job machinery: enqueueing comes in as a port
(`calls.ports.AiJobQueue`), so `callscope.calls` imports neither `callscope.jobs` nor the AI
pipeline."""

import ast
from pathlib import Path

import callscope

PACKAGE = Path(callscope.__file__).parent
KEPT_OUT_OF_CALLS = ("callscope.jobs", "callscope.pipeline")


def imported_modules(source: str, package: str) -> set[str]:
    """Every module (and imported name) a module of `package` imports, as absolute names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_the_calls_domain_imports_no_job_or_pipeline_module() -> None:
    offending = {
        f"{source.relative_to(PACKAGE)}: {name}"
        for source in (PACKAGE / "calls").rglob("*.py")
        for name in imported_modules(source.read_text(), "callscope.calls")
        if name.startswith(KEPT_OUT_OF_CALLS)
    }
    assert offending == set()


def test_imports_of_every_form_are_seen() -> None:
    source = "import callscope.jobs.queue\nfrom ..pipeline import processing\nfrom . import ids\n"
    assert imported_modules(source, "callscope.calls") >= {
        "callscope.jobs.queue",
        "callscope.pipeline.processing",
        "callscope.calls.ids",
    }
