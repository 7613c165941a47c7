"""Token checking in constant time. Two roles: ingest (PBX side) and supervisor (read side)."""

import hashlib
import hmac
from collections.abc import Iterable
from enum import StrEnum

from callscope.errors import Forbidden, NotAuthenticated


class Role(StrEnum):
    ingest = "ingest"
    supervisor = "supervisor"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenChecker:
    """Knows the configured tokens only by their SHA-256 digests."""

    def __init__(
        self, *, ingest: Iterable[str], supervisor: Iterable[str], disabled: bool = False
    ) -> None:
        self._known = [(Role.ingest, _digest(t)) for t in ingest] + [
            (Role.supervisor, _digest(t)) for t in supervisor
        ]
        self.disabled = disabled
        if not disabled and not self._known:
            raise ValueError(
                "no tokens configured: set CALLSCOPE_INGEST_TOKENS and "
                "CALLSCOPE_SUPERVISOR_TOKENS, or CALLSCOPE_AUTH_DISABLED=true"
            )

    def roles_of(self, token: str) -> set[Role]:
        """Every role the token holds; compares against all tokens, never stopping early."""
        presented = _digest(token)
        return {role for role, known in self._known if hmac.compare_digest(presented, known)}

    def authorize(self, authorization: str | None, needed: Role) -> None:
        """Raise unless the `Authorization` header carries a token of the needed role."""
        if self.disabled:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            raise NotAuthenticated("a bearer token is required")
        self.authorize_token(token, needed)

    def authorize_token(self, token: str | None, needed: Role) -> None:
        """Raise unless `token` (however it was presented) is a token of the needed role."""
        if self.disabled:
            return
        token = (token or "").strip()
        if not token:
            raise NotAuthenticated("a bearer token is required")
        roles = self.roles_of(token)
        if not roles:
            raise NotAuthenticated("the bearer token is not valid")
        if needed not in roles:
            raise Forbidden(f"this token may not be used for {needed} requests")
