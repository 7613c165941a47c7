"""Read deploy/compose.yaml as Compose does: YAML merge keys resolved, `${VAR…}` interpolated."""

import re
from collections.abc import Mapping
from typing import Any, Final

import yaml

from tests.deploy.tools import DEPLOY

COMPOSE_FILE: Final = DEPLOY / "compose.yaml"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
_VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation of a value: a set variable, else the default; a required one
    that is not set is an error, as in `docker compose config`."""

    def value(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if name in variables:
            return variables[name]
        if operator in (":-", "-"):
            return str(argument)
        if operator in (":?", "?"):
            raise KeyError(f"{name} is required: {argument}")
        return ""

    return _VARIABLE.sub(value, text)


def load(variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file's model; with `variables`, interpolated first (None: as written)."""
    text = COMPOSE_FILE.read_text()
    if variables is not None:
        text = interpolate(text, variables)
    model: dict[str, Any] = yaml.safe_load(text)
    return model


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as strings (Compose accepts a mapping or a list)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}
