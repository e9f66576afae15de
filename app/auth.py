"""Admin authentication: a bearer token from HYBRIDGAN_ADMIN_TOKEN, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from .deps import get_settings


def require_admin(request: Request) -> None:
    token = get_settings(request).admin_token
    if not token:
        raise HTTPException(403, "admin endpoints are off: set HYBRIDGAN_ADMIN_TOKEN to turn them on")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest takes the same time wherever the strings differ; the token is never logged or echoed
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "admin token missing or wrong (send Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})


AdminDep = Annotated[None, Depends(require_admin)]
