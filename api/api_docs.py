"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served from the package, so they work on a network with no way
out (care networks are often locked down; issue 14).

FastAPI's own pages load both from a CDN. These are the same pages (FastAPI's ``get_swagger_ui_html`` and
``get_redoc_html``, as its "Custom Docs UI Static Assets" guide describes) pointed at the assets that the
``fastapi-offline`` package ships (Swagger UI 5, ReDoc 2: both read the OpenAPI 3.1 FastAPI writes), served under
:data:`ASSETS_PATH`. Nothing on either page comes from another origin: no CDN, no Google Fonts, no favicon from
fastapi.tiangolo.com.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "DOCS_URL", "REDOC_URL", "assets_directory", "install"]

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_PATH = "/docs/assets"  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png


def assets_directory() -> Path:
    """Where the installed ``fastapi-offline`` keeps Swagger UI's and ReDoc's files."""
    return Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Serve the assets and the two pages. The app must be built with ``docs_url=None, redoc_url=None`` (so that
    FastAPI does not add its CDN pages first)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_directory()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def root(request: Request) -> str:
        # Behind a proxy that serves the API under a prefix, every URL keeps the prefix.
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        prefix = root(request)
        return get_swagger_ui_html(
            openapi_url=prefix + openapi_url, title=f"{app.title}: Swagger UI",
            swagger_js_url=f"{prefix}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{prefix}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{prefix}{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=prefix + OAUTH2_REDIRECT_URL, swagger_ui_parameters=app.swagger_ui_parameters)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        prefix = root(request)
        return get_redoc_html(openapi_url=prefix + openapi_url, title=f"{app.title}: ReDoc",
                              redoc_js_url=f"{prefix}{ASSETS_PATH}/redoc.standalone.js",
                              redoc_favicon_url=f"{prefix}{ASSETS_PATH}/favicon.png", with_google_fonts=False)
