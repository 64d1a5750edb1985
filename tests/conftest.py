"""Shared fixtures: the scripted web (HTTP + HTTPS on 127.0.0.1), a trustme CA, settings.

- ``tls_ca``        (session) a trustme CA; ``ca_file`` its PEM path (for --ca-file).
- ``web``           a started :class:`tests.webserver.SimWeb` (HTTP and HTTPS ports);
                    register pages with ``web.page(path, html, status=200, headers=...)``
                    or handlers with ``web.route(path, handler)``; see tests/webserver.py.
- ``web_settings``  a function ``(**check_overrides) -> Settings`` with --connect-to
                    rules sending every host's port 80/443 to ``web``, ``ca_file`` set,
                    and short timeouts/backoffs for fast tests. Example::

                        settings = web_settings(retries=0, timeout=1)

Nothing here talks to any address but 127.0.0.1.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).parent))

from checker.settings import Settings  # noqa: E402
from webserver import TLS_NAMES, SimWeb  # noqa: E402

#: Check settings that keep tests fast: short timeouts, tiny backoff.
FAST_CHECK: dict[str, Any] = {
    "timeout": 2.0, "connect_timeout": 1.0, "retries": 2, "backoff_base": 0.01,
    "backoff_max": 0.05, "retry_after_cap": 1.5,
}


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throwaway certificate authority for the HTTPS side of the scripted web."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of the CA's PEM file (what --ca-file takes)."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def server_ssl(tls_ca: trustme.CA) -> ssl.SSLContext:
    """Server-side TLS context with a certificate for every name in TLS_NAMES."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert(*TLS_NAMES).configure_cert(context)
    return context


@pytest.fixture
async def web(server_ssl: ssl.SSLContext) -> AsyncIterator[SimWeb]:
    """A started scripted web (fresh per test: counters start at zero)."""
    server = await SimWeb(server_ssl).start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def web_settings(web: SimWeb, ca_file: str) -> Callable[..., Settings]:
    """Build Settings pointing every host at ``web`` (``**overrides`` go to [check])."""
    def build(**overrides: Any) -> Settings:
        check = {**FAST_CHECK, "connect_to": web.connect_to, "ca_file": ca_file, **overrides}
        return Settings().with_overrides({f"check.{k}": v for k, v in check.items()})
    return build
