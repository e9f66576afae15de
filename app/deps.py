"""Typed dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from .generation import Generation
from .registry import LoadedModel, ModelRegistry, NoModel, UnknownVersion
from .settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_generation(request: Request) -> Generation:
    return request.app.state.generation


def model_for(request: Request, version: str | None = None) -> LoadedModel:
    """The model a request runs on: taken once, so a hot-swap mid-request does not change it."""
    try:
        return get_registry(request).get(version)
    except NoModel as e:
        raise HTTPException(503, f"no model is being served: {e}. Train one and publish it "
                                 "(hybridgan publish CHECKPOINT), or start a training job.",
                            headers={"Retry-After": "10"}) from None
    except UnknownVersion as e:
        raise HTTPException(404, str(e)) from None
    except ValueError as e:  # a pinned version whose file does not load
        raise HTTPException(409, f"model version {version!r} cannot be loaded: {e}") from None


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
GenerationDep = Annotated[Generation, Depends(get_generation)]


def current_model(request: Request) -> LoadedModel:
    return model_for(request, None)


ModelDep = Annotated[LoadedModel, Depends(current_model)]
