"""The API's documentation as served: an OpenAPI document that tells the truth, and the
Swagger UI (``/docs``) and ReDoc (``/redoc``) pages with their assets served by tongdai.

FastAPI's generated document needs two corrections:

- it adds a ``422 Validation Error`` to every operation with parameters, but tongdai
  answers validation failures with ``400 invalid_parameter`` (``errors.py``), so the
  422 and its schemas go;
- the handlers declare their credentials and window parameters optional, so that a
  missing app id or hash is a 401 and a missing date a 400 with its own message; the
  document marks them required (``required(...)`` on the route) all the same.

FastAPI's pages load their scripts from a CDN, so ``/docs`` is blank on a machine
without internet. The assets come from the ``fastapi-offline`` package (MIT), which
ships the distribution builds of Swagger UI (Apache-2.0) and ReDoc (MIT); they are
served under ``/docs/assets/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse

__all__ = ["ASSETS", "ASSET_PATH", "DocumentedApi", "install_docs", "required", "truthful"]

ASSET_PATH = "/docs/assets"
# name -> media type; nothing else under ASSET_PATH is served.
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"
_REQUIRED = "x-tongdai-required"
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def required(*names: str) -> dict[str, Any]:
    """``openapi_extra`` of a route whose handler requires the parameters ``names``
    itself (``truthful`` marks them required in the document)."""
    return {_REQUIRED: list(names)}


def truthful(doc: dict[str, Any]) -> dict[str, Any]:
    """Correct FastAPI's document in place (see the module docstring); returns it."""
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            op.get("responses", {}).pop("422", None)
            names = set(op.pop(_REQUIRED, ()))
            for param in op.get("parameters", ()):
                if param["name"] in names:
                    names.discard(param["name"])
                    param["required"] = True
                    param["schema"] = _not_null(param["schema"])
            if names:  # a typo in required(...) would silently document nothing
                raise ValueError(f"{method.upper()} {path} has no parameter {sorted(names)}")
    if "#/components/schemas/HTTPValidationError" not in json.dumps(doc.get("paths", {})):
        schemas = doc.get("components", {}).get("schemas", {})
        for name in _VALIDATION_SCHEMAS:
            schemas.pop(name, None)
    return doc


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``str | None`` declared as required: the schema of the ``str`` alone."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema
    kept = [o for o in options if o != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    return {**kept[0], **rest} if len(kept) == 1 else {"anyOf": kept, **rest}


class DocumentedApi(FastAPI):
    """FastAPI whose ``/openapi.json`` is corrected by ``truthful``."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = truthful(super().openapi())
        return self.openapi_schema


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI), ``/redoc`` and their assets from this server.

    The app must be created with ``docs_url=None, redoc_url=None``.
    """
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSET_PATH}/favicon.png"

    async def swagger(_: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSET_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSET_PATH}/swagger-ui.css", swagger_favicon_url=favicon,
            # The validator badge would ask validator.swagger.io about our document.
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def redoc(_: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSET_PATH}/redoc.standalone.js", redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    async def asset(request: Request) -> FileResponse:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise HTTPException(404)
        return FileResponse(_ASSET_DIR / name, media_type=ASSETS[name],
                            headers={"cache-control": "public, max-age=86400"})

    app.add_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.add_route(f"{ASSET_PATH}/{{name}}", asset, methods=["GET"], include_in_schema=False)
