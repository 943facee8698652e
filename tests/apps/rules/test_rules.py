"""Rules from a module under tests/ attached by a real ``ferryman start``, and what goes wrong
when the configuration names something that is not there."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.apps.accesslog.test_start import stopped
from tests.cli.proxy_process import ProxyProcess
from tests.servers.edge import EdgeServer

HERE = Path(__file__).parent

RULES = """
  module: rulebook
  attach:
    - endpoint: api
      route: "GET /users/*"
      on_request: tag_user
      on_response: [stamp]
    - endpoint: "a*"
      route: "/admin/*"
      on_request: deny
"""


def write_config(tmp_path: Path, edge: EdgeServer, rules: str = RULES) -> Path:
    path = tmp_path / "ferryman.yml"
    path.write_text(
        f"""applications: [proxy, rules]
proxy:
  port: 0
  endpoints:
    - {{name: api, port: 0, url: "{edge.url}"}}
    - {{name: other, port: 0, url: "{edge.url}"}}
rules:{rules}"""
    )
    return path


def request(base: str, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """Sends ``target`` as it is (no client-side normalization of dot segments)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, target)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def upstream_headers(body: bytes) -> dict[str, str]:
    return {name.lower(): value for name, value in json.loads(body)["headers"]}


def test_rules_change_requests_and_answers_and_answer_directly(
    tmp_path: Path, edge: EdgeServer
) -> None:
    process = ProxyProcess(["--config", str(write_config(tmp_path, edge)), "--app-dir", str(HERE)])
    try:
        process.wait_serving()
        api, other = process.url("api"), process.url("other")
        status, headers, body = request(api, "GET", "/users/7")
        assert status == 200
        assert upstream_headers(body)["x-user-rule"] == "api"
        assert headers["x-rule"] == "stamped"
        # Another method, another route, another endpoint: the rule is not theirs.
        for base, method, target in ((api, "POST", "/users/7"), (api, "GET", "/orders/1")):
            status, headers, body = request(base, method, target)
            assert "x-user-rule" not in upstream_headers(body) and "x-rule" not in headers
        status, headers, body = request(other, "GET", "/users/7")
        assert "x-user-rule" not in upstream_headers(body)
        # Answered by the rule, however the path is spelt; the upstream never hears of it.
        marker = uuid.uuid4().hex
        for target in ("/admin/x", "/%61dmin/x", "/users/../admin/x", "/./admin/x"):
            status, _, body = request(api, "GET", f"{target}?m={marker}")
            assert (status, json.loads(body)) == (403, {"error": "denied by a rule"}), target
        assert not [t for _, t in list(edge.requests) if marker in t]
        status, _, _ = request(other, "GET", "/admin/x")  # ("other" is not "a*")
        assert status == 200
        stopped(process)
    finally:
        process.stop()


def test_an_async_rule_on_the_client_event_signs_what_goes_upstream(
    tmp_path: Path, edge: EdgeServer
) -> None:
    rules = """
  module: rulebook
  attach:
    - {route: "GET /signed/*", on_upstream_request: sign}
"""
    process = ProxyProcess(
        ["--config", str(write_config(tmp_path, edge, rules)), "--app-dir", str(HERE)]
    )
    try:
        process.wait_serving()
        _, _, body = request(process.url("api"), "GET", "/signed/1")
        assert upstream_headers(body)["x-signed"] == "yes"
        _, _, body = request(process.url("api"), "GET", "/unsigned/1")
        assert "x-signed" not in upstream_headers(body)
        stopped(process)
    finally:
        process.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferryman.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            "\n  module: rulebook\n  attach:\n    - {route: /x, on_request: nope}\n",
            "error: rules.attach.0.on_request: module 'rulebook' has no 'nope' (from ",
        ),
        (
            "\n  attach:\n    - {route: /x, on_response: [stamp, 'missing_mod:fn']}\n",
            "error: rules.attach.0.on_response.0: 'stamp' names no module, and rules.module",
        ),
        (
            "\n  attach:\n    - {route: /x, on_response: [rulebook:stamp, 'missing_mod:fn']}\n",
            "error: rules.attach.0.on_response.1: there is no module 'missing_mod'",
        ),
        (
            "\n  module: rulebook\n  attach:\n    - {route: /x, on_request: NOT_A_FUNCTION}\n",
            "error: rules.attach.0.on_request: rulebook:NOT_A_FUNCTION is 42, not a function",
        ),
        (
            "\n  module: rulebook\n  attach:\n    - {route: GET users/*, on_request: deny}\n",
            "error: rules.attach.0.route: 'GET users/*': the path glob must start with '/'",
        ),
        (
            "\n  module: rulebook\n  attach:\n    - {endpoint: paymnts, on_request: deny}\n",
            "error: rules.attach.0.endpoint: 'paymnts' matches no endpoint",
        ),
    ],
)
def test_bad_rules_refuse_to_start_naming_the_key_and_the_file(
    tmp_path: Path, edge: EdgeServer, rules: str, expected: str
) -> None:
    path = write_config(tmp_path, edge, rules)
    result = run_cli("start", "--config", str(path), "--app-dir", str(HERE))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert str(path) in result.stderr


def test_ferryman_rules_lists_what_is_attached_where(tmp_path: Path, edge: EdgeServer) -> None:
    rules = RULES + '    - {route: "GET /signed/*", on_upstream_request: sign}\n'
    path = write_config(tmp_path, edge, rules)
    result = run_cli("rules", "--config", str(path), "--app-dir", str(HERE))
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines == [
        ["ENDPOINT", "MATCHES", "ROUTE", "EVENT", "FUNCTION"],
        ["api", "api", "GET", "/users/*", "proxy.filter.request", "rulebook:tag_user"],
        ["api", "api", "GET", "/users/*", "proxy.filter.response", "rulebook:stamp"],
        ["a*", "api", "/admin/*", "proxy.filter.request", "rulebook:deny"],
        [
            "*",
            "api,other",
            "GET",
            "/signed/*",
            "http_client.filter.request",
            "rulebook:sign",
            "(async)",
        ],
    ]
    assert "general path" in result.stderr
