"""The dashboard page and the health check."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app import __version__

router = APIRouter()


# HEAD too: `curl -I` (and uptime checks) asked with it and got 405
@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse,
                  include_in_schema=False)
async def index(request: Request) -> HTMLResponse:
    settings = request.app.state.settings
    token = request.query_params.get("token", "") if settings.token else ""
    page: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, "index.html",
        {"version": __version__, "token": token, "replay": settings.replay,
         "modules": request.app.state.modules,
         # a replay of a file without a snapshot says what it cannot know
         "replay_note": getattr(request.app.state, "replay_note", None)},
    )
    return page


@router.head("/healthz", include_in_schema=False)  # a route of its own: one route for both
@router.get("/healthz")  # methods gives both one operation id, and FastAPI warns of the duplicate
async def healthz() -> dict[str, bool]:
    return {"ok": True}
