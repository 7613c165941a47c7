"""FastAPI dependencies, as Annotated aliases; the only place routes reach process resources.

Each route takes exactly one dependency, the bearer check of its role, which hands back the
process `Resources`: every extra dependency costs measurable time on the ingest hot path.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from callscope.auth.tokens import Role
from callscope.resources import Resources


class RoleBearer(HTTPBearer):
    """`Authorization: Bearer <token>` of one role; shown as a security scheme in /docs."""

    def __init__(self, role: Role) -> None:
        super().__init__(
            scheme_name=f"{role}Token",
            description=f"A {role} token (CALLSCOPE_{role.upper()}_TOKENS).",
            auto_error=False,
        )
        self.role = role

    async def __call__(self, request: Request) -> Resources:  # type: ignore[override]  # returns the resources, not credentials
        resources: Resources = request.app.state.resources
        resources.tokens.authorize(request.headers.get("authorization"), self.role)
        return resources


IngestAuth = Annotated[Resources, Depends(RoleBearer(Role.ingest))]
SupervisorAuth = Annotated[Resources, Depends(RoleBearer(Role.supervisor))]


async def get_resources(request: Request) -> Resources:
    """For unauthenticated routes (probes)."""
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]
