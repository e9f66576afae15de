"""App factory: `create_app(settings)` wires the registry, the batcher, metrics and the routes."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from .generation import Generation, Overloaded
from .jobs_client import JobQueue
from .limits import BodyLimit
from .metrics import Metrics
from .registry import ModelRegistry
from .routes import generate, info, jobs, pages
from .settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def require_designer_open(request: Request) -> None:
    if not request.app.state.settings.designer_open:
        raise HTTPException(403, "the designer endpoints are closed on this service (HYBRIDGAN_DESIGNER_OPEN=false)")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    registry = ModelRegistry(settings.home, settings.device, settings.poll_seconds, metrics,
                             settings.pinned_models_cached)
    generation = Generation(metrics, settings.batching, settings.batch_window_ms, settings.batch_max_images,
                            settings.max_queue_images)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        (settings.home / "models").mkdir(parents=True, exist_ok=True)
        registry.start()
        await generation.start()
        if registry.current is None:
            logging.getLogger("hybridgan").warning(
                "no model is published in %s yet: generation answers 503 until one is", settings.home)
        yield
        await generation.stop()
        registry.stop()

    app = FastAPI(title="hybridgan", version="0.1.0", lifespan=lifespan,
                  description="Hybrid-GAN shoe design inspiration: generate shoes of a class and steer their "
                              "shape with c_info. Every image is reproducible from its parameters.")
    app.state.settings, app.state.metrics = settings, metrics
    app.state.registry, app.state.generation = registry, generation
    app.state.jobs = JobQueue(settings.home, settings.broker_url)
    app.state.templates = Jinja2Templates(directory=str(TEMPLATES))

    @app.middleware("http")
    async def timing(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.latency.labels(getattr(route, "path", "unmatched")).observe(time.perf_counter() - t0)
        return response

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded):
        from fastapi.responses import JSONResponse
        return JSONResponse({"detail": f"the service is busy: {exc}"}, status_code=503,
                            headers={"Retry-After": "1"})

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.mount("/static", StaticFiles(directory=str(TEMPLATES / "static")), name="static")
    designer = [Depends(require_designer_open)]
    app.include_router(generate.router, dependencies=designer)
    app.include_router(info.router)
    app.include_router(jobs.router)
    app.include_router(jobs.datasets_router)
    app.include_router(pages.router)
    app.include_router(pages.explorer_router, dependencies=designer)
    return app
