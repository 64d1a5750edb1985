"""Who may use the daemon's web server when a token is set: API clients and browsers.

    API clients    ``Authorization: Bearer <token>`` on every request (unchanged)
    browsers       GET /login: a form; POST /login with the token sets a session cookie;
                   GET /logout: a button; POST /logout clears the cookie

Without a valid bearer header or cookie, a browser's page request (GET, ``Accept:
text/html``, not under /api/) is sent to /login and comes back after; anything else
gets the JSON 401 as before. ``/healthz`` stays open for Docker's probe.

The cookie holds no secret: ``<expiry>.<HMAC-SHA256(token, expiry)>``, checked in
constant time. Changing the token ends every session; nothing is stored server-side.
It is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no request from another
site carries it, the first defence against cross-site request forgery), ``Secure``
when the page came over https (directly, or ``X-Forwarded-Proto: https`` from a
proxy). As a second defence a POST, and any request authenticated by the cookie that
is not GET or HEAD, must come from this origin: its ``Origin`` header (sent by every
current browser on a POST) must name this host, else 403. See OWASP's Cross-Site
Request Forgery Prevention Cheat Sheet ("Verifying Origin With Standard Headers").
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from typing import Callable
from urllib.parse import quote, urlsplit

from aiohttp import web

__all__ = ["COOKIE", "auth_middleware", "add_login_routes", "session_value", "valid_session", "safe_next"]

COOKIE = "linkhealth_session"
#: Failed logins allowed per minute over all clients, then 429 (a weak token is guessed slowly).
FAILED_LOGINS_PER_MINUTE = 20
_OPEN = frozenset({"/healthz", "/login", "/logout"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PAGE_HEADERS = {
    "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'",
}


def _mac(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"linkhealth-session:{expires}".encode(), hashlib.sha256).hexdigest()


def session_value(token: str, max_age: float, now: float | None = None) -> str:
    """A session cookie's value, valid for ``max_age`` seconds from ``now``."""
    expires = int((time.time() if now is None else now) + max_age)
    return f"{expires}.{_mac(token, expires)}"


def valid_session(value: str | None, token: str, now: float | None = None) -> bool:
    """Whether a cookie value was made with ``token`` and has not expired (constant-time check)."""
    head, dot, mac = (value or "").partition(".")
    if not dot or not head.isascii() or not head.isdigit() or len(head) > 12:
        return False
    expires = int(head)
    good = hmac.compare_digest(mac.encode(), _mac(token, expires).encode())
    return good and expires > (time.time() if now is None else now)


def _bearer_ok(request: web.Request, expected: bytes) -> bool:
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)


def same_origin(request: web.Request) -> bool:
    """Whether a state-changing request comes from this origin (its Origin names our Host).

    No Origin at all (curl, an old client) passes: browsers send it on every POST, and
    cross-site forgery needs a browser. ``Origin: null`` (a sandboxed or file:// page) fails.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == (request.host or "").lower()


def _wants_page(request: web.Request) -> bool:
    """A browser asking for a page (not the API, not a script's fetch)."""
    return (request.method in ("GET", "HEAD") and not request.path.startswith("/api/")
            and "text/html" in request.headers.get("Accept", ""))


def safe_next(value: str | None) -> str:
    """Where to go after login: a path of this server only (never //host or a URL)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x20 or c == "\\" for c in value):
        return "/"
    return value


def auth_middleware(token: str) -> Callable:
    """Bearer header or session cookie on everything but /healthz and the login pages."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler):
        if request.path in _OPEN:
            return await handler(request)
        if _bearer_ok(request, expected):
            return await handler(request)
        if valid_session(request.cookies.get(COOKIE), token):
            if request.method not in _SAFE_METHODS and not same_origin(request):
                return web.json_response({"error": "cross-origin request refused"}, status=403)
            return await handler(request)
        if _wants_page(request):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")
        return web.json_response({"error": "a valid 'Authorization: Bearer <token>' header is required "
                                           "(browsers: sign in at /login)"},
                                 status=401, headers={"WWW-Authenticate": 'Bearer realm="linkhealth"'})

    return middleware


class _FailedLogins:
    """Failed logins in the last minute, over all clients."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.times: list[float] = []

    def blocked(self) -> bool:
        now = self.clock()
        self.times = [t for t in self.times if now - t < 60.0]
        return len(self.times) >= FAILED_LOGINS_PER_MINUTE

    def add(self) -> None:
        self.times.append(self.clock())


def _page(title: str, body: str, status: int = 200, headers: dict | None = None) -> web.Response:
    text = ("<!doctype html><html lang=en><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style><main>{body}</main></html>")
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={**_PAGE_HEADERS, **(headers or {})})


_CSS = ("body{font:16px/1.5 system-ui,sans-serif;background:#f6f7f9;color:#1d2433;margin:0}"
        "main{max-width:22rem;margin:12vh auto;background:#fff;padding:2rem;border-radius:8px;"
        "box-shadow:0 1px 4px #0002}h1{font-size:1.25rem;margin:0 0 1rem}label{display:block;margin:0 0 .25rem}"
        "input{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;margin:0 0 1rem}"
        "button{padding:.5rem 1rem;font:inherit;cursor:pointer}.error{color:#b3261e}.hint{color:#5c6578;"
        "font-size:.875rem}")


def _login_form(title: str, next_: str, error: str = "") -> str:
    message = f"<p class=error role=alert>{html.escape(error)}</p>" if error else ""
    return (f"<h1>{html.escape(title)}</h1>{message}"
            "<form method=post action=/login>"
            f"<input type=hidden name=next value='{html.escape(next_, quote=True)}'>"
            "<label for=token>Token</label>"
            "<input id=token name=token type=password autocomplete=current-password required autofocus>"
            "<button type=submit>Sign in</button></form>"
            "<p class=hint>The daemon's token (daemon.token, or LINKHEALTH_DAEMON_TOKEN).</p>")


def add_login_routes(app: web.Application, token: str, *, title: str, max_age: float) -> None:
    """GET/POST /login and GET/POST /logout, for a daemon with a token."""
    failures = _FailedLogins()

    async def login_form(request: web.Request) -> web.Response:
        if valid_session(request.cookies.get(COOKIE), token):
            raise web.HTTPSeeOther(safe_next(request.query.get("next")))
        return _page(f"Sign in: {title}", _login_form(title, safe_next(request.query.get("next"))))

    async def login(request: web.Request) -> web.Response:
        if not same_origin(request):
            return _page("Refused", "<h1>Refused</h1><p>The sign-in form was sent from another site.</p>", 403)
        form = await request.post()
        next_ = safe_next(str(form.get("next", "")))
        if failures.blocked():
            return _page(f"Sign in: {title}", _login_form(title, next_, "Too many failed attempts: wait a minute."),
                         429, {"Retry-After": "60"})
        given = str(form.get("token", "")).encode()
        if not hmac.compare_digest(given, token.encode()):
            failures.add()
            return _page(f"Sign in: {title}", _login_form(title, next_, "That token is not right."), 401)
        response = web.HTTPSeeOther(next_)
        response.set_cookie(COOKIE, session_value(token, max_age), max_age=int(max_age), path="/",
                            httponly=True, samesite="Strict", secure=_over_https(request))
        raise response

    async def logout_form(request: web.Request) -> web.Response:
        return _page("Sign out", f"<h1>{html.escape(title)}</h1><form method=post action=/logout>"
                                 "<button type=submit>Sign out</button></form>")

    async def logout(request: web.Request) -> web.Response:
        if not same_origin(request):
            return _page("Refused", "<h1>Refused</h1><p>The request came from another site.</p>", 403)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/logout", logout_form)
    app.router.add_post("/logout", logout)


def _over_https(request: web.Request) -> bool:
    """Whether the browser reached us over https (directly, or through a TLS proxy)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"
