"""Bearer-token auth: writes always need the token, reads only when `read_auth` is on; fail closed without one."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from cronframework.errors import CronframeworkError


@dataclass(frozen=True)
class Denied:
    status: int
    message: str


@dataclass(frozen=True)
class TokenAuth:
    token: str | None = field(default=None, repr=False)  # repr=False: a logged or printed config never shows it
    read_auth: bool = False

    def __post_init__(self) -> None:
        if self.read_auth and not self.token:
            raise CronframeworkError("api.read_auth is on but no API token is configured (token_file or env)")

    def check(self, header: str | None, *, write: bool) -> Denied | None:
        """None when allowed; otherwise the HTTP status and a message that never echoes what was sent."""
        if not write and not self.read_auth:
            return None
        if self.token is None:
            return Denied(403, "writes are disabled: no API token is configured")
        scheme, _, presented = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return Denied(401, "a bearer token is required")
        # compare_digest on bytes: constant time whatever the input, and no TypeError on non-ASCII text
        if not hmac.compare_digest(presented.strip().encode(), self.token.encode()):
            return Denied(401, "invalid token")
        return None
