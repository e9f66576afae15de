"""Request and response bodies of the REST API (they become the OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True,
                              json_schema_extra={"examples": [{"class": "Boot", "c_info": [0.5, -0.5],
                                                               "seed": 7, "count": 4, "format": "json"}]})

    class_: str | int = Field(alias="class", description="class name (case-insensitive) or index")
    c_info: list[float] | None = Field(None, description="one value in [-1, 1] per info dimension; "
                                                         "absent: drawn from each image's seed")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="absent: chosen and returned")
    count: int = Field(1, ge=1, description="images to generate (at most HYBRIDGAN_MAX_COUNT)")
    format: Literal["png", "json"] = Field("png", description="one PNG (a grid when count > 1) or JSON "
                                                              "with one base64 PNG per image")
    model_version: str | None = Field(None, description="pin a published model version; absent: the current one")


class ImageParams(BaseModel):
    """Everything that reproduces one image: the same values on the same model version give the same bytes."""

    model_config = ConfigDict(populate_by_name=True)

    model_version: str
    class_: str = Field(alias="class")
    class_index: int
    c_info: list[float]
    seed: int


class GeneratedImage(BaseModel):
    params: ImageParams
    url: str = Field(description="permalink of this image (GET, cacheable)")
    png_base64: str


class GenerateResponse(BaseModel):
    model_version: str
    seed: int
    images: list[GeneratedImage]


class GridCell(BaseModel):
    row: int
    col: int
    c_info: list[float]
    url: str


class GridResponse(BaseModel):
    model_version: str
    class_: str = Field(alias="class")
    seed: int
    dims: list[int]
    steps: int
    range: float
    png_url: str
    cells: list[GridCell]


class ClassInfo(BaseModel):
    index: int
    name: str


class ModelsResponse(BaseModel):
    current: dict | None
    loading: str | None
    last_error: str | None
    available: list[str]
