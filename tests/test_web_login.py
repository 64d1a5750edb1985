"""Browsers get into a daemon with a token: a login form sets a session cookie; the API's
bearer token is unchanged. Real HTTP on 127.0.0.1 over a real database, and a real
headless Chromium signing in through the form."""

from __future__ import annotations

from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from typing import Any

import aiohttp
import pytest

from checker.pipeline import report_stage
from checker.settings import Settings
from checker.webauth import COOKIE, safe_next, session_value, valid_session
from test_web import BACKENDS, serve, store  # noqa: F401 - fixtures

TOKEN = "tok-4c1d7e9a2b"
PAGE = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def request(port: int, method: str, path: str, *, headers: dict | None = None, data: Any = None,
                  cookie: str | None = None) -> tuple[int, str, Any]:
    """(status, body, headers) of one request, redirects not followed, cookie sent by hand
    (aiohttp's cookie jar keeps none for an IP address)."""
    headers = dict(headers or {})
    if cookie is not None:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    async with aiohttp.ClientSession() as session:
        async with session.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, data=data,
                                   allow_redirects=False) as resp:
            return resp.status, await resp.text(), resp.headers


def session_cookie(headers: Any) -> Any:
    """The linkhealth session morsel of a response's Set-Cookie headers, or None."""
    for header in headers.getall("Set-Cookie", []):
        jar = SimpleCookie()
        jar.load(header)
        if COOKIE in jar:
            return jar[COOKIE]
    return None


async def sign_in(port: int, **extra: str) -> Any:
    status, _, headers = await request(port, "POST", "/login", data={"token": TOKEN, "next": "/"},
                                       headers={"Origin": f"http://127.0.0.1:{port}", **extra})
    assert status == 303, status
    return session_cookie(headers)


async def test_a_browser_without_a_session_is_sent_to_the_login_page(serve):
    web = await serve(token=TOKEN, report="<!doctype html><title>报告</title>")
    status, _, headers = await request(web.port, "GET", "/?tab=dead&q=a%26b", headers=PAGE)
    location = urlsplit(headers["Location"])
    assert status == 303 and location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/?tab=dead&q=a%26b"]}    # comes back to the same page
    status, body, headers = await request(web.port, "GET", "/login?next=/%3Ftab%3Ddead", headers=PAGE)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<form method=post action=/login>" in body and "type=password" in body
    assert "value='/?tab=dead'" in body
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    # The API and non-browser clients keep the JSON 401.
    for path, accept in (("/api/links", PAGE), ("/", {"Accept": "*/*"}), ("/metrics", {})):
        status, body, headers = await request(web.port, "GET", path, headers=accept)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert headers["Content-Type"].startswith("application/json")


async def test_signing_in_sets_a_strict_httponly_cookie_that_opens_the_report(serve):
    web = await serve(token=TOKEN, report="<!doctype html><title>报告</title>")
    status, body, headers = await request(web.port, "POST", "/login", headers={"Origin": f"http://127.0.0.1:{web.port}"},
                                          data={"token": TOKEN, "next": "/?tab=dead"})
    assert status == 303 and headers["Location"] == "/?tab=dead"
    cookie = session_cookie(headers)
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]                                   # plain http: a Secure cookie would be dropped
    assert int(cookie["max-age"]) == 7 * 86400
    assert TOKEN not in cookie.value                              # the cookie holds no secret
    status, body, _ = await request(web.port, "GET", "/", headers=PAGE, cookie=cookie.value)
    assert status == 200 and "<title>报告</title>" in body
    assert (await request(web.port, "GET", "/api/links", cookie=cookie.value))[0] == 200
    # Behind a TLS proxy the cookie is Secure.
    assert (await sign_in(web.port, **{"X-Forwarded-Proto": "https"}))["secure"]


async def test_a_wrong_token_forged_or_expired_cookie_gets_nothing(serve):
    web = await serve(token=TOKEN, report="<!doctype html><title>报告</title>")
    status, body, headers = await request(web.port, "POST", "/login", data={"token": TOKEN + "x"})
    assert status == 401 and "That token is not right." in body and session_cookie(headers) is None
    expired = session_value(TOKEN, 60, now=0)
    forged = session_value("another-token", 3600)
    for value in (expired, forged, forged.split(".")[0] + ".", TOKEN, "", "9" * 40 + ".x"):
        status, _, headers = await request(web.port, "GET", "/", headers=PAGE, cookie=value)
        assert status == 303 and headers["Location"].startswith("/login"), value
        assert (await request(web.port, "GET", "/api/links", cookie=value))[0] == 401
    # The bearer token works as before, and a wrong one is still refused.
    assert (await web.get("/api/links"))[0] == 200
    assert (await web.get("/api/links", token=TOKEN + "x"))[0] == 401


async def test_cross_site_posts_are_refused(serve):
    """SameSite=Strict keeps the cookie off cross-site requests; the Origin check refuses them too."""
    web = await serve(token=TOKEN)
    evil = {"Origin": "http://evil.example"}
    status, _, headers = await request(web.port, "POST", "/login", headers=evil, data={"token": TOKEN})
    assert status == 403 and session_cookie(headers) is None
    assert (await request(web.port, "POST", "/login", headers={"Origin": "null"}, data={"token": TOKEN}))[0] == 403
    cookie = (await sign_in(web.port)).value
    assert (await request(web.port, "POST", "/api/links", headers=evil, cookie=cookie))[0] == 403
    assert (await request(web.port, "POST", "/logout", headers=evil, cookie=cookie))[0] == 403


async def test_signing_out_clears_the_cookie(serve):
    web = await serve(token=TOKEN)
    cookie = (await sign_in(web.port)).value
    status, body, _ = await request(web.port, "GET", "/logout", headers=PAGE, cookie=cookie)
    assert status == 200 and "<form method=post action=/logout>" in body
    status, _, headers = await request(web.port, "POST", "/logout", cookie=cookie,
                                       headers={"Origin": f"http://127.0.0.1:{web.port}"})
    assert status == 303 and headers["Location"] == "/login"
    cleared = session_cookie(headers)
    assert cleared.value == "" and cleared["max-age"] == "0"


async def test_failed_logins_are_slowed_down(serve):
    web = await serve(token=TOKEN)
    statuses = [(await request(web.port, "POST", "/login", data={"token": f"guess{i}"}))[0] for i in range(21)]
    assert statuses[:20] == [401] * 20 and statuses[20] == 429
    assert (await request(web.port, "POST", "/login", data={"token": TOKEN}))[0] == 429   # for a minute
    assert (await web.get("/api/links"))[0] == 200                                       # the API is not


@pytest.mark.parametrize("value, expected", [
    ("/", "/"), ("/?tab=dead", "/?tab=dead"), ("/api/links?q=%E9%93%BE", "/api/links?q=%E9%93%BE"),
    ("//evil.example/", "/"), ("/\\evil.example", "/"), ("https://evil.example/", "/"), ("", "/"),
    (None, "/"), ("/a\r\nSet-Cookie: x=1", "/"), ("javascript:alert(1)", "/"),
])
def test_where_to_go_after_signing_in_stays_on_this_server(value, expected):
    assert safe_next(value) == expected


def test_session_values_are_checked_in_full():
    value = session_value(TOKEN, 3600)
    assert valid_session(value, TOKEN) and not valid_session(value, TOKEN + "x")
    expires, mac = value.split(".")
    assert not valid_session(f"{int(expires) + 1}.{mac}", TOKEN)        # a longer life is a forgery
    assert not valid_session(f"{expires}.{mac[:-1]}", TOKEN)


async def test_without_a_token_there_is_no_login(serve):
    web = await serve()
    assert (await web.get("/login"))[0] == 404


# -- a real browser ---------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_chromium_signs_in_through_the_form_and_sees_the_report(serve, store, tmp_path: Path):
    from playwright.async_api import async_playwright

    from test_report_browser import ARGS, chromium_path

    await report_stage(store, Settings(data_dir=str(tmp_path / "data")))   # the real report of this database
    web = await serve(token=TOKEN)
    base = f"http://127.0.0.1:{web.port}"
    async with async_playwright() as pw:
        # ARGS make every host name "not found" (nothing leaves the machine); the daemon's
        # loopback address is let through, as an address, not a name.
        args = [a + " , EXCLUDE 127.0.0.1" if a.startswith("--host-resolver-rules=") else a for a in ARGS]
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=args)
        page = await browser.new_page(viewport={"width": 900, "height": 640})
        await page.goto(f"{base}/")
        assert page.url == f"{base}/login?next=/"
        await page.screenshot(path=str(tmp_path / "login.png"))
        await page.fill("#token", TOKEN + "-wrong")
        await page.click("button[type=submit]")
        assert "That token is not right." in await page.inner_text("main")
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_selector("body[data-ready=true]")
        assert page.url == f"{base}/"
        assert "标题 one" in await page.inner_text("body")        # a title from the database
        await page.screenshot(path=str(tmp_path / "report.png"))
        cookies = await page.context.cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [(COOKIE, True, "Strict")]
        assert await page.evaluate("document.cookie") == ""       # HttpOnly: no script reads it
        # The API answers the signed-in browser too; signing out ends it.
        assert (await page.goto(f"{base}/api/links?limit=1")).status == 200
        await page.goto(f"{base}/logout")
        await page.click("button[type=submit]")
        assert page.url.startswith(f"{base}/login")
        assert (await page.goto(f"{base}/api/links")).status == 401
        await browser.close()
    print(f"screenshots: {tmp_path / 'login.png'} {tmp_path / 'report.png'}")


def test_a_session_lifetime_must_be_positive():
    from checker.errors import ConfigError
    from checker.settings import load_settings
    with pytest.raises(ConfigError, match="daemon.session_max_age must be positive"):
        load_settings(None, environ={"LINKHEALTH_DAEMON_SESSION_MAX_AGE": "0"})
