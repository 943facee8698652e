"""The dashboard over HTTP, served by a real ``ferryman start``: basic auth in front of the
pages, ``/api`` and the rest of the kernel's port (not the traffic), assets with their types
and a strict Content-Security-Policy."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.apps.dashboard.conftest import USER, StartProxy, basic
from tests.apps.dashboard.traffic import send, wait_recorded
from tests.servers.httpbin_server import HttpbinServer


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.fixture
def guarded(httpbin: HttpbinServer, start_proxy: StartProxy) -> tuple[str, str]:
    proxy = start_proxy(httpbin.url, auth=True)
    return proxy.url("kernel"), proxy.url("api")


@pytest.mark.parametrize(
    "path", ["/", "/static/app.js", "/api/transactions", "/api/system", "/nothing"]
)
def test_auth_is_required_everywhere_on_the_kernel_port(
    guarded: tuple[str, str], path: str
) -> None:
    kernel, _ = guarded
    status, headers, body = fetch(kernel + path)
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="ferryman", charset="UTF-8"'
    assert body == b'{"status": 401, "message": "Unauthorized"}'
    for wrong in (basic(password="wrong"), basic(user="root"), {"Authorization": "Bearer x"}):
        assert fetch(kernel + path, wrong)[0] == 401


def test_the_right_password_opens_pages_and_api_and_traffic_needs_none(
    guarded: tuple[str, str],
) -> None:
    kernel, endpoint = guarded
    status, headers, body = fetch(kernel + "/", basic())
    assert status == 200 and b'<script type="module" src="/static/app.js">' in body
    assert send(endpoint + "/get?through=proxy") == 200  # proxied traffic: no auth asked
    items = wait_recorded(kernel, 1)
    assert items[0]["target"] == "/get?through=proxy"
    # The API answers through the same credentials.
    status, headers, _ = fetch(kernel + "/api/system", basic())
    assert status == 200 and headers["content-type"] == "application/json"


def test_a_password_from_an_environment_variable_or_a_hash(
    httpbin: HttpbinServer, start_proxy: StartProxy
) -> None:
    from ferryman.apps.dashboard.passwords import make_hash

    proxy = start_proxy(
        httpbin.url,
        "--set",
        f"dashboard.auth.username={USER}",
        "--set",
        "dashboard.auth.password_env=DASHBOARD_SECRET",
        env={"DASHBOARD_SECRET": "from the environment"},
    )
    kernel = proxy.url("kernel")
    assert fetch(kernel + "/", basic(password="from the environment"))[0] == 200
    assert fetch(kernel + "/", basic(password="wrong"))[0] == 401
    assert "from the environment" not in proxy.output

    hashed = make_hash("hashed one", iterations=1000)
    proxy = start_proxy(
        httpbin.url,
        "--set",
        f"dashboard.auth.username={USER}",
        "--set",
        f"dashboard.auth.password_hash={hashed}",
    )
    kernel = proxy.url("kernel")
    assert fetch(kernel + "/", basic(password="hashed one"))[0] == 200
    assert fetch(kernel + "/", basic(password="hashed two"))[0] == 401


CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/static/index.html", "text/html; charset=utf-8"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/detail.js", "text/javascript; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
    ],
)
def test_assets_have_their_type_and_a_strict_policy(
    httpbin: HttpbinServer, start_proxy: StartProxy, path: str, content_type: str
) -> None:
    kernel = start_proxy(httpbin.url).url("kernel")  # on loopback: no auth needed
    status, headers, body = fetch(kernel + path)
    assert status == 200 and body
    assert headers["content-type"] == content_type
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    # Revalidated by ETag, not refetched.
    assert fetch(kernel + path, {"If-None-Match": headers["etag"]})[0] == 304


def test_no_inline_script_and_no_html_parsing_in_the_assets() -> None:
    """The CSP forbids inline scripts; the scripts never parse traffic as HTML."""
    from importlib import resources

    static = resources.files("ferryman.apps.dashboard") / "static"
    html = (static / "index.html").read_text()
    assert "<script>" not in html and "onclick" not in html and "style=" not in html
    for entry in static.iterdir():
        if entry.name.endswith(".js"):
            text = entry.read_text()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in text, (entry.name, sink)


def test_unknown_paths_are_a_json_404_and_other_methods_405(
    httpbin: HttpbinServer, start_proxy: StartProxy
) -> None:
    kernel = start_proxy(httpbin.url).url("kernel")
    status, _headers, body = fetch(kernel + "/static/nothing.js")
    assert status == 404 and body == b'{"status": 404, "message": "Not Found"}'
    request = urllib.request.Request(kernel + "/", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 405
