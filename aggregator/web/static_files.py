"""The reader's static files (package data): cached for a year when asked for by their versioned URL.

Pages link every asset as /static/NAME?v=HASH (aggregator.web.reader.asset_url), so a changed file
gets a new URL and an old copy in a browser's cache is never used for it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

YEAR = 365 * 24 * 3600


class VersionedStatic(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        versioned = b"v=" in scope.get("query_string", b"")
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable" if versioned else "no-cache"
        return response


def static_files() -> VersionedStatic:
    folder = Path(str(resources.files("aggregator.web").joinpath("static")))
    return VersionedStatic(directory=folder)
