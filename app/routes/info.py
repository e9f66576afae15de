"""Classes, models, health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from model.store import list_versions

from ..deps import ModelDep, RegistryDep
from ..schemas import ClassInfo, ModelsResponse

router = APIRouter(tags=["info"])


@router.get("/classes", response_model=list[ClassInfo])
def classes(lm: ModelDep):
    """The classes the current model generates."""
    return [{"index": i, "name": n} for i, n in enumerate(lm.class_names)]


@router.get("/models", response_model=ModelsResponse)
def models(registry: RegistryDep):
    """The model being served (version, config, training summary), what is loading, and the published versions."""
    cur = registry.current
    return {"current": cur.summary() if cur else None, "loading": registry.loading,
            "last_error": registry.last_error, "available": list_versions(registry.home)}


@router.get("/healthz")
def healthz():
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(registry: RegistryDep, response: Response):
    """Readiness: 200 once a model is serving, 503 before."""
    cur = registry.current
    if cur is None:
        response.status_code = 503
        return {"status": "no model", "detail": registry.last_error or "no model is published yet"}
    return {"status": "ready", "model_version": cur.version}


@router.get("/metrics", response_class=Response)
def metrics(request: Request):
    """Prometheus metrics: request latency, images generated, model version, reload failures."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
