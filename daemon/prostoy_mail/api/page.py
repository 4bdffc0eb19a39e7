"""The mail settings page ("Моя организация → Почтовые шлюзы"): files served at `/` from the
package (page/), a small client of this API; nothing from any other host.

Why a client of the API and not server-rendered pages: every button is a call the API already
makes and checks (permissions, limits, problems), so the page cannot do what the API would
refuse, and the CRM's own screens can do what the page does. It is plain JavaScript modules,
with no build step: nothing to install or rebuild on a fresh machine."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PAGE = Path(__file__).resolve().parent.parent / "page"
HEADERS = {
    # only this server's own scripts, styles and API; no framing (clickjacking), no sniffing
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # (revalidated: a new version of the daemon serves new files at once)
}


class PageFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def page_files() -> PageFiles:
    return PageFiles(directory=PAGE, html=True)
