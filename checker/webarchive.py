"""The daemon's /archive/ route: local copies served over HTTP, never a file outside the archive.

The report links each local copy; opened from the daemon (http://), a browser refuses
its file:// links, so the report points at ``archive/<host>/<name>.html`` on the same
server instead and this route serves it. Only readable copies (``.html``) and WARC
files (``.warc.gz``, as downloads) are served, and only files inside the archive folder
once every symlink and ``..`` is resolved: a traversal (``../``, ``%2e%2e%2f``, an
absolute path) or a symlink pointing out of the folder gets 404, like a missing file.
The web app's middlewares (token, Host check) apply as to every other route.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from .archive.readable import CSP

__all__ = ["archive_route", "inside_archive", "COPY_HEADERS"]

#: A copy is someone else's page: on top of its own CSP, a sandbox gives it an opaque origin,
#: so even a script that slipped through could not read the daemon's API.
COPY_HEADERS = {
    "Content-Security-Policy": CSP + "; sandbox allow-popups allow-popups-to-escape-sandbox; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
}


def inside_archive(root: Path, relative: str) -> Path | None:
    """The existing copy or WARC file ``relative`` names inside ``root``, or None."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return None
    if not (relative.endswith(".html") or relative.endswith(".warc.gz")):
        return None
    base = Path(os.path.realpath(root))
    try:
        target = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError):      # missing, or a symlink loop
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def archive_route(root: Path):
    """The GET handler of ``/archive/{path:.*}`` for the archive folder ``root``."""
    async def handler(request: web.Request) -> web.StreamResponse:
        target = inside_archive(root, request.match_info.get("path", ""))
        if target is None:
            raise web.HTTPNotFound(text="no such local copy\n")
        if target.name.endswith(".html"):
            return web.FileResponse(target, headers={"Content-Type": "text/html; charset=utf-8", **COPY_HEADERS})
        return web.FileResponse(target, headers={
            "Content-Type": "application/warc", "Content-Disposition": f'attachment; filename="{target.name}"',
            **COPY_HEADERS})
    return handler
