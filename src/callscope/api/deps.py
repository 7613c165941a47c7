"""FastAPI dependencies, as Annotated aliases; the only place routes reach process resources."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from callscope.auth.tokens import Role
from callscope.calls.service import CallService
from callscope.ingest.committer import GroupCommitter
from callscope.resources import Resources
from callscope.settings import Settings


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def _settings(resources: ResourcesDep) -> Settings:
    return resources.settings


def _committer(resources: ResourcesDep) -> GroupCommitter:
    return resources.committer


def _calls(resources: ResourcesDep) -> CallService:
    return resources.calls


SettingsDep = Annotated[Settings, Depends(_settings)]
CommitterDep = Annotated[GroupCommitter, Depends(_committer)]
CallServiceDep = Annotated[CallService, Depends(_calls)]


def _require(role: Role) -> Callable[..., Awaitable[None]]:
    async def authorize(
        resources: ResourcesDep,
        authorization: Annotated[
            str | None, Header(description=f"`Bearer <token>`, a {role} token.")
        ] = None,
    ) -> None:
        resources.tokens.authorize(authorization, role)

    return authorize


require_ingest = Depends(_require(Role.ingest))
require_supervisor = Depends(_require(Role.supervisor))
