"""The web pages of ``dialer api``: what sales operations staff use, in the same process and on the same token.

:func:`install` adds them to the API app: sign-in (:mod:`.auth_routes`),
campaigns and uploads (:mod:`.routes`), the do-not-call list
(:mod:`.dnc_routes`), the static script and style sheet, and the ``/docs``
page with Swagger UI served from the ``swagger-ui-bundle`` package instead
of a CDN, so nothing is fetched from outside at run time. Plain
server-rendered HTML (Jinja2) and one small script: no build step.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from producer.web import auth_routes, dnc_routes, routes, session
from producer.web.core import HERE, SESSION_COOKIE, ForwardedPrefix, SignInRequired, WebConfig, here, href, root

__all__ = ["install"]


def install(app: FastAPI, api_token: str, *, region: str = "CN",
            session_ttl_s: float = session.DEFAULT_TTL_S) -> None:
    """Add the pages, their assets and a CDN-free ``/docs`` to ``app`` (created with ``docs_url=None``)."""
    import swagger_ui_bundle

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.state.web = WebConfig(session.derive_key(api_token.encode()), api_token.encode(), session_ttl_s,
                              region, templates)
    app.add_middleware(ForwardedPrefix)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="web-static")
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)), name="docs-assets")
    for router in (auth_routes.router, routes.router, dnc_routes.router):
        app.include_router(router, include_in_schema=False)
    app.add_api_route("/docs", _docs, methods=["GET"], include_in_schema=False)
    app.add_exception_handler(SignInRequired, _sign_in)


def _docs(request: Request) -> HTMLResponse:
    base = root(request)
    return get_swagger_ui_html(
        openapi_url=base + (request.app.openapi_url or "/openapi.json"), title="sip-dialer API",
        swagger_js_url=f"{base}/docs-assets/swagger-ui-bundle.js",
        swagger_css_url=f"{base}/docs-assets/swagger-ui.css",
        swagger_favicon_url=f"{base}/docs-assets/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from the validator's site
    )


async def _sign_in(request: Request, _exc: Exception) -> Response:
    """A page asked for without a valid session goes to sign-in and back; anything else is refused."""
    if request.method in ("GET", "HEAD"):
        expired = 1 if request.cookies.get(SESSION_COOKIE) else None
        return RedirectResponse(href(request, "/ui/login", next=here(request), expired=expired),
                                status_code=303)
    return PlainTextResponse("sign in first: no valid session", status_code=401)
