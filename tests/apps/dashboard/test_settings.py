"""The dashboard's settings, and the refusal to serve the traffic beyond loopback without auth,
as ``ferryman start`` says it: a real process, its exit code and its words."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ferryman.proxy.settings import is_loopback
from ferryman.system import ConfigurationError, load_config
from tests.apps.dashboard.conftest import USER, basic
from tests.apps.dashboard.test_application import fetch
from tests.cli.proxy_process import ProxyProcess
from tests.servers.httpbin_server import HttpbinServer

REFUSAL = (
    "error: dashboard.auth: required when proxy.host is not a loopback address (got '0.0.0.0' "
    "from --host 0.0.0.0): the dashboard and /api on proxy.port show the recorded traffic to "
    "anyone who can reach it; set dashboard.auth.username and dashboard.auth.password (or "
    "password_env, password_hash), or bind proxy.host to 127.0.0.1"
)


def start(*args: str) -> subprocess.CompletedProcess[str]:
    import os

    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FERRYMAN_") or k == "FERRYMAN_DATA_DIR"
    }
    return subprocess.run(
        [sys.executable, "-m", "ferryman.cli.main", "start", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


def test_start_refuses_a_host_beyond_loopback_without_auth() -> None:
    result = start(
        "--host", "0.0.0.0", "--endpoint", "api=0:http://127.0.0.1:9", "--set", "proxy.port=0"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == REFUSAL
    # The UI switched off does not open /api either: still refused.
    result = start("--host", "0.0.0.0", "--set", "dashboard.enabled=false", "--set", "proxy.port=0")
    assert result.returncode == 2 and "dashboard.auth: required" in result.stderr


def test_storage_without_the_dashboard_is_refused_beyond_loopback_too() -> None:
    # Its /api would have no guard at all: the dashboard's auth is what guards it.
    apps = ["--set", "applications=[proxy, storage]", "--set", "proxy.port=0"]
    result = start("--host", "0.0.0.0", *apps)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: applications: storage serves the recorded traffic at /api on proxy.port, which "
        "is not a loopback address (got '0.0.0.0' from --host 0.0.0.0), with no auth: add the "
        "dashboard application with dashboard.auth, or bind proxy.host to 127.0.0.1"
    )
    # Recording switched off serves nothing there: no refusal.
    config = load_config(
        [],
        env={},
        overrides=["applications=[proxy, storage]", "proxy.host=0.0.0.0", "storage.enabled=false"],
    )
    assert config["proxy"]["host"] == "0.0.0.0"


def test_start_refuses_with_the_other_problems_at_once() -> None:
    result = start("--host", "10.1.2.3", "--set", "proxy.port=abc")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    # The proxy's own problem first; the refusal needs valid settings to be judged.
    assert lines[0].startswith("error: proxy.port: must be a whole number")


def test_with_auth_it_serves_beyond_loopback(httpbin: HttpbinServer) -> None:
    process = ProxyProcess(
        [
            "--host",
            "0.0.0.0",
            "--endpoint",
            f"api=0:{httpbin.url}",
            "--set",
            "proxy.port=0",
            "--set",
            f"dashboard.auth.username={USER}",
            "--set",
            "dashboard.auth.password=correct horse",
        ]
    )
    try:
        process.wait_serving()
        port = process.url("kernel").rsplit(":", 1)[1]
        assert fetch(f"http://127.0.0.1:{port}/api/system")[0] == 401
        assert fetch(f"http://127.0.0.1:{port}/api/system", basic())[0] == 200
        assert "correct horse" not in process.output
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("10.0.0.1", False),
        ("example.org", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        (
            {"username": "a"},
            "dashboard.auth: give exactly one of password, password_env and password_hash",
        ),
        ({"username": "a", "password": "x", "password_hash": "y"}, "(got password, password_hash)"),
        (
            {"username": "a", "password_env": "FERRYMAN_TEST_UNSET_VARIABLE"},
            "FERRYMAN_TEST_UNSET_VARIABLE is not set",
        ),
        (
            {"username": "a", "password_hash": "md5$1$2"},
            "password_hash: must look like pbkdf2_sha256$",
        ),
        ({"username": "a:b", "password": "x"}, "cannot carry a ':'"),
        ({"username": "", "password": "x"}, "dashboard.auth.username: must be a string"),
    ],
)
def test_bad_auth_settings_name_the_key(auth: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_config(env={}, overrides=[f"dashboard.auth.{k}={v}" for k, v in auth.items()])
    assert any(problem in line for line in error.value.problems), error.value.problems


def test_the_password_is_masked_when_the_configuration_is_printed() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ferryman.cli.main",
            "config",
            "--set",
            "dashboard.auth.username=a",
            "--set",
            "dashboard.auth.password=hunter2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "username: a" in result.stdout
