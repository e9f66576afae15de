"""The browser explorer page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["pages"], include_in_schema=False)
explorer_router = APIRouter(tags=["pages"], include_in_schema=False)


@explorer_router.get("/", response_class=HTMLResponse)
def explorer(request: Request):
    """The c_info explorer: class picker, sliders, seed, the c_info grid, interpolation."""
    reg = request.app.state.registry
    cur = reg.current
    return request.app.state.templates.TemplateResponse(request, "explorer.html", {
        "model": cur.summary() if cur else None, "last_error": reg.last_error})


@router.get("/admin", response_class=HTMLResponse)
def admin(request: Request):
    """The admin jobs page; it asks for the admin token and sends it with each API call."""
    return request.app.state.templates.TemplateResponse(request, "admin.html", {
        "enabled": bool(request.app.state.settings.admin_token)})
