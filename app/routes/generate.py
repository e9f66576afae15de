"""Generation routes: POST /generate, image and grid permalinks, interpolation strips and GIFs."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import random
from typing import Annotated, Any
from urllib.parse import urlencode

import numpy as np
import torch
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from PIL import Image

from model.data import to_uint8
from model.sampling import image_grid, latent, request_rows, slerp

from ..deps import GenerationDep, SettingsDep, model_for
from ..generation import png_bytes
from ..registry import LoadedModel
from ..schemas import GenerateRequest, GenerateResponse, GridResponse

router = APIRouter(tags=["generate"])

IMMUTABLE = "public, max-age=31536000, immutable"


def resolve_class(lm: LoadedModel, value: str | int) -> int:
    names = lm.class_names
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        i = int(value)
        if 0 <= i < len(names):
            return i
        raise HTTPException(422, f"class index {i} is out of range 0..{len(names) - 1}; classes are {names}")
    lower = [n.lower() for n in names]
    if value.strip().lower() in lower:
        return lower.index(value.strip().lower())
    raise HTTPException(422, f"unknown class {value!r}; this model's classes are {names}")


def check_c_info(lm: LoadedModel, c_info: list[float] | None, limit: float = 1.0) -> list[float] | None:
    if c_info is None:
        return None
    dim = lm.info.model.info_dim
    if len(c_info) != dim:
        raise HTTPException(422, f"c_info needs {dim} values (one per info dimension), got {len(c_info)}")
    for v in c_info:
        if not math.isfinite(v) or abs(v) > limit:
            raise HTTPException(422, f"c_info values must be finite and within [-{limit:g}, {limit:g}], got {v}")
    return [float(np.float32(v)) for v in c_info]  # the exact values G sees


def parse_floats(text: str | None, name: str) -> list[float] | None:
    if text is None or text == "":
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise HTTPException(422, f"{name} must be comma-separated numbers, got {text!r}") from None


def rows_for(lm: LoadedModel, c: int, c_info: list[float] | None, seed: int, n: int):
    """Generator inputs of images seed..seed+n-1, by model.sampling's one rule."""
    return request_rows(lm.G, c, c_info, seed, n)


def image_url(request: Request, version: str, cls: str, c_info: list[float], seed: int) -> str:
    q = urlencode({"class": cls, "seed": seed, "c_info": ",".join(repr(v) for v in c_info), "model": version})
    return f"{request.url_for('image_permalink').path}?{q}"


def etag_for(*parts: Any) -> str:
    return '"' + hashlib.sha1(repr(parts).encode()).hexdigest()[:32] + '"'


def cache_headers(etag: str, version: str, pinned: bool) -> dict[str, str]:
    """The bytes are a pure function of the parameters and the model version: a URL that pins the
    version may be cached for good; one that follows the current model must revalidate (ETag)."""
    return {"ETag": etag, "Cache-Control": IMMUTABLE if pinned else "no-cache", "X-Model-Version": version}


def not_modified(request: Request, headers: dict[str, str]) -> Response | None:
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return None


def grid_png(images: torch.Tensor, ncol: int) -> bytes:
    return png_bytes(np.asarray(image_grid(images, ncol=ncol)))


@router.post("/generate", response_model=GenerateResponse,
             responses={200: {"content": {"image/png": {}}, "description": "PNG (format=png) or JSON"}})
async def generate(body: GenerateRequest, request: Request, settings: SettingsDep, gen: GenerationDep):
    """Generate shoes of a class; every image is reproducible from the parameters reported with it."""
    if body.count > settings.max_count:
        raise HTTPException(422, f"count must be at most {settings.max_count}, got {body.count}")
    lm = await run_in_threadpool(model_for, request, body.model_version)
    c = resolve_class(lm, body.class_)
    c_info = check_c_info(lm, body.c_info)
    seed = body.seed if body.seed is not None else random.SystemRandom().randrange(2**31 - body.count)
    if seed + body.count - 1 > 2**31 - 1:
        raise HTTPException(422, "seed + count must stay below 2^31")
    z, cv, ci = rows_for(lm, c, c_info, seed, body.count)
    images = await gen.run(lm, z, cv, ci)
    name = lm.class_names[c]
    params = [{"model_version": lm.version, "class": name, "class_index": c,
               "c_info": [float(v) for v in ci[i]], "seed": seed + i} for i in range(body.count)]
    headers = {"X-Model-Version": lm.version, "X-Seed": str(seed), "X-Class": name}
    if body.format == "png":
        ncol = math.ceil(math.sqrt(body.count))
        data = await gen.to_thread(grid_png, images, ncol) if body.count > 1 else \
            await gen.to_thread(lambda: png_bytes(to_uint8(images)[0]))
        headers["X-Image-Params"] = _header_json(params)
        return Response(data, media_type="image/png", headers=headers)
    pngs = await gen.to_thread(lambda: [png_bytes(a) for a in to_uint8(images)])
    out = [{"params": p, "url": image_url(request, lm.version, name, p["c_info"], p["seed"]),
            "png_base64": base64.b64encode(b).decode()} for p, b in zip(params, pngs)]
    return GenerateResponse.model_validate({"model_version": lm.version, "seed": seed, "images": out})


def _header_json(params: list[dict]) -> str:
    text = json.dumps(params, separators=(",", ":"))
    return text if len(text) < 7000 else json.dumps({"truncated": True, "count": len(params)})


ClassQ = Annotated[str, Query(alias="class", description="class name or index")]
ModelQ = Annotated[str | None, Query(alias="model", description="pinned model version")]


@router.get("/image.png", name="image_permalink", response_class=Response,
            responses={200: {"content": {"image/png": {}}}, 304: {"description": "not modified"}})
async def image(request: Request, gen: GenerationDep, cls: ClassQ,
                seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                c_info: Annotated[str | None, Query(description="comma-separated values in [-1, 1]")] = None,
                model: ModelQ = None):
    """One image as a PNG permalink, usable in <img src>; cached for good when the model is pinned."""
    lm = await run_in_threadpool(model_for, request, model)
    c = resolve_class(lm, cls)
    ci = check_c_info(lm, parse_floats(c_info, "c_info"))
    headers = cache_headers(etag_for("image", lm.version, c, ci, seed), lm.version, model is not None)
    if (cached := not_modified(request, headers)) is not None:
        return cached
    z, cv, cinfo = rows_for(lm, c, ci, seed, 1)
    images = await gen.run(lm, z, cv, cinfo)
    data = await gen.to_thread(lambda: png_bytes(to_uint8(images)[0]))
    return Response(data, media_type="image/png", headers=headers)


async def _grid_inputs(request: Request, settings, cls: str, seed: int, steps: int, range_: float, dims: str,
                       model: str | None):
    lm = await run_in_threadpool(model_for, request, model)
    c = resolve_class(lm, cls)
    if not 2 <= steps <= settings.max_grid_steps:
        raise HTTPException(422, f"steps must be between 2 and {settings.max_grid_steps}, got {steps}")
    if not (math.isfinite(range_) and 0 < range_ <= settings.max_cinfo_abs):
        raise HTTPException(422, f"range must be in (0, {settings.max_cinfo_abs:g}], got {range_}")
    d = parse_floats(dims, "dims") or [0, 1]
    info_dim = lm.info.model.info_dim
    if len(d) != 2 or any(v != int(v) or not 0 <= v < info_dim for v in d) or (info_dim > 1 and d[0] == d[1]):
        raise HTTPException(422, f"dims must be two different c_info dimensions in 0..{info_dim - 1}, got {dims!r}")
    return lm, c, (int(d[0]), int(d[1]))


def _grid_cells(lm: LoadedModel, dims, steps: int, range_: float) -> list[list[float]]:
    values = torch.linspace(-range_, range_, steps)
    cells = []
    for a in values:
        for b in values:
            ci = torch.zeros(lm.info.model.info_dim)
            ci[dims[0]] = a
            if lm.info.model.info_dim > 1:
                ci[dims[1]] = b
            cells.append([float(v) for v in ci])
    return cells


GridSteps = Annotated[int, Query(description="cells per side")]
GridRange = Annotated[float, Query(alias="range", description="sweep each axis over [-range, range]")]


@router.get("/grid.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def grid(request: Request, settings: SettingsDep, gen: GenerationDep, cls: ClassQ,
               seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0, steps: GridSteps = 7,
               range_: GridRange = 1.0, dims: str = "0,1", model: ModelQ = None):
    """The c_info grid (the paper's Figure 4): one z, two c_info dimensions swept along rows and columns."""
    lm, c, d = await _grid_inputs(request, settings, cls, seed, steps, range_, dims, model)
    headers = cache_headers(etag_for("grid", lm.version, c, seed, steps, range_, d), lm.version, model is not None)
    if (cached := not_modified(request, headers)) is not None:
        return cached
    cells = _grid_cells(lm, d, steps, range_)
    cfg = lm.info.model
    z, _ = latent(seed, cfg.z_dim, cfg.info_dim)
    n = len(cells)
    cv = torch.zeros(n, cfg.num_classes)
    cv[:, c] = 1.0
    images = await gen.run(lm, z.expand(n, -1), cv, torch.tensor(cells))
    data = await gen.to_thread(grid_png, images, steps)
    return Response(data, media_type="image/png", headers=headers)


@router.get("/grid.json", response_model=GridResponse, response_model_by_alias=True)
async def grid_json(request: Request, settings: SettingsDep, cls: ClassQ,
                    seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0, steps: GridSteps = 7,
                    range_: GridRange = 1.0, dims: str = "0,1", model: ModelQ = None):
    """The parameters of each c_info grid cell, with a permalink to the cell and to the grid PNG."""
    lm, c, d = await _grid_inputs(request, settings, cls, seed, steps, range_, dims, model)
    name = lm.class_names[c]
    cells = _grid_cells(lm, d, steps, range_)
    q = urlencode({"class": name, "seed": seed, "steps": steps, "range": range_, "dims": f"{d[0]},{d[1]}",
                   "model": lm.version})
    return {"model_version": lm.version, "class": name, "seed": seed, "dims": list(d), "steps": steps,
            "range": range_, "png_url": f"{request.url_for('grid').path}?{q}",
            "cells": [{"row": i // steps, "col": i % steps, "c_info": ci,
                       "url": image_url(request, lm.version, name, ci, seed)} for i, ci in enumerate(cells)]}


@router.get("/interpolate.{fmt}", response_class=Response,
            responses={200: {"content": {"image/png": {}, "image/gif": {}}}})
async def interpolate(request: Request, settings: SettingsDep, gen: GenerationDep, fmt: str, cls: ClassQ,
                      kind: Annotated[str, Query(description="'seed' or 'class'")] = "seed",
                      seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                      seed_b: Annotated[int, Query(ge=0, le=2**31 - 1)] = 1,
                      class_b: Annotated[str | None, Query(description="target class (kind=class)")] = None,
                      steps: Annotated[int, Query(description="frames")] = 8,
                      c_info: Annotated[str | None, Query()] = None, model: ModelQ = None):
    """Frames between two seeds (slerp of z) or two classes (a blend of the class input): a PNG strip or a GIF."""
    if fmt not in ("png", "gif"):
        raise HTTPException(404, "interpolation comes as .png (a strip of frames) or .gif (an animation)")
    if kind not in ("seed", "class"):
        raise HTTPException(422, f"kind must be 'seed' or 'class', got {kind!r}")
    if not 2 <= steps <= settings.max_interp_steps:
        raise HTTPException(422, f"steps must be between 2 and {settings.max_interp_steps}, got {steps}")
    lm = await run_in_threadpool(model_for, request, model)
    c = resolve_class(lm, cls)
    if kind == "class" and class_b is None:
        raise HTTPException(422, "kind=class needs class_b, the class to blend into")
    cb = resolve_class(lm, class_b) if kind == "class" else c
    ci = check_c_info(lm, parse_floats(c_info, "c_info"))
    headers = cache_headers(etag_for("interp", fmt, lm.version, kind, c, cb, seed, seed_b, steps, ci),
                            lm.version, model is not None)
    if (cached := not_modified(request, headers)) is not None:
        return cached
    cfg = lm.info.model
    za, ia = latent(seed, cfg.z_dim, cfg.info_dim)
    info = ia if ci is None else torch.tensor(ci)
    ts = torch.linspace(0, 1, steps).tolist()
    eye = torch.eye(cfg.num_classes)
    if kind == "seed":
        zb, _ = latent(seed_b, cfg.z_dim, cfg.info_dim)
        z = torch.stack([slerp(za, zb, t) for t in ts])
        cv = eye[c].expand(steps, -1)
    else:
        z = za.expand(steps, -1)
        cv = torch.stack([(1 - t) * eye[c] + t * eye[cb] for t in ts])
    frames = await gen.run(lm, z, cv, info.expand(steps, -1))
    if fmt == "png":
        return Response(await gen.to_thread(grid_png, frames, steps), media_type="image/png", headers=headers)
    return Response(await gen.to_thread(_gif, frames), media_type="image/gif", headers=headers)


def _gif(frames: torch.Tensor) -> bytes:
    arr = to_uint8(frames)
    scale = max(1, 128 // arr.shape[1])  # small models are shown larger
    ims = [Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.Resampling.NEAREST)
           for a in arr]
    ims = ims + ims[-2:0:-1]  # there and back, so the loop has no jump
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=120, loop=0)
    return buf.getvalue()
