"""FastAPI dependencies, as Annotated aliases; the only place routes reach the process.

Each route takes exactly one dependency, the bearer check of its role, which hands back the
`Process`: every extra dependency costs measurable time on the ingest hot path.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from callscope.auth.tokens import Role, TokenChecker
from callscope.process import Process


class RoleBearer(HTTPBearer):
    """`Authorization: Bearer <token>` of one role; shown as a security scheme in /docs."""

    def __init__(self, role: Role) -> None:
        super().__init__(
            scheme_name=f"{role}Token",
            description=f"A {role} token (CALLSCOPE_{role.upper()}_TOKENS).",
            auto_error=False,
        )
        self.role = role

    async def __call__(self, request: Request) -> Process:  # type: ignore[override]  # returns the process, not credentials
        tokens: TokenChecker = request.app.state.tokens
        tokens.authorize(request.headers.get("authorization"), self.role)
        process: Process = request.app.state.process
        return process


IngestAuth = Annotated[Process, Depends(RoleBearer(Role.ingest))]
SupervisorAuth = Annotated[Process, Depends(RoleBearer(Role.supervisor))]


async def get_process(request: Request) -> Process:
    """For unauthenticated routes (probes)."""
    process: Process = request.app.state.process
    return process


ProcessDep = Annotated[Process, Depends(get_process)]
