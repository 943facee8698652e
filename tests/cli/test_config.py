"""``ferryman config``: the configuration ``ferryman start`` would run, from the same options,
and the one-line errors (exit code 2) both commands give for bad usage or a bad configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from ferryman.cli.main import main
from ferryman.proxy.__main__ import proxy as proxy_module_command


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    # Anything but a deliberate exit is a crash the user would see as a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def printed_config(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = invoke("config", *args, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(autouse=True)
def _no_ferryman_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``FERRYMAN_*`` variables of whoever runs the tests do not change what is printed."""
    for name in list(os.environ):
        if name.startswith("FERRYMAN_") and name != "FERRYMAN_DATA_DIR":  # (not configuration)
            monkeypatch.delenv(name)


def test_start_and_config_are_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    commands = result.stdout.split("Commands:")[1]
    assert {"config", "get", "start"} <= {line.split()[0] for line in commands.strip().splitlines()}


def test_default_configuration() -> None:
    config = printed_config()
    assert config["applications"] == [
        "proxy",
        "cache",
        "accesslog",
        "metrics",
        "storage",
        "dashboard",
    ]
    # The dashboard on the kernel's port, without auth: the host is loopback.
    assert config["dashboard"] == {"enabled": True, "auth": None}
    # Recording by default, into the data directory (here the tests' own: tests/conftest.py).
    assert config["storage"]["enabled"] is True
    assert config["storage"]["url"] == (
        "sqlite:///" + os.path.join(os.environ["FERRYMAN_DATA_DIR"], "transactions.db")
    )
    assert config["logging"]["access_log"] == "stderr"
    assert config["logging"]["format"] == "text"
    assert config["metrics"]["path"] == "/metrics"
    assert config["proxy"]["host"] == "127.0.0.1"
    assert config["proxy"]["port"] == 4080
    assert config["proxy"]["endpoints"] == []
    assert config["proxy"]["grace_period"] == 10.0


def test_logging_options_are_the_logging_settings() -> None:
    config = printed_config("--access-log", "off", "--log-format", "JSON", "--log-level", "debug")
    assert config["logging"]["access_log"] == "off"
    assert config["logging"]["format"] == "json"
    assert config["logging"]["level"] == "debug"
    assert printed_config("--set", "logging.access_log=off")["logging"]["access_log"] == "off"
    assert printed_config("--access-log", "-")["logging"]["access_log"] == "-"


def test_logging_options_without_the_accesslog_application_name_the_key() -> None:
    result = invoke("config", "--set", "applications=[proxy]", "--log-level", "debug")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: logging: unknown configuration key")
    assert "(from --log-level debug)" in result.stderr


def test_endpoint_shortcut_keeps_the_colons_of_the_url() -> None:
    config = printed_config("--endpoint", "api=4000:https://user:pw@api.example.org:8443/v1")
    [endpoint] = config["proxy"]["endpoints"]
    assert endpoint["name"] == "api"
    assert endpoint["port"] == 4000
    assert endpoint["url"] == ["https://user:pw@api.example.org:8443/v1"]
    assert endpoint["timeout"] == {"connect": 5.0, "read": 60.0, "write": 60.0, "pool": 5.0}


def test_endpoint_name_that_looks_like_a_number_stays_a_name() -> None:
    [endpoint] = printed_config("-e", "404=4000:http://127.0.0.1:9")["proxy"]["endpoints"]
    assert endpoint["name"] == "404"


def test_endpoints_of_files_come_first_and_set_can_tune_a_shortcut(tmp_path: Path) -> None:
    file = tmp_path / "ferryman.yml"
    file.write_text(
        "proxy:\n"
        "  port: 5080\n"
        "  endpoints:\n"
        "    - {name: maps, path: /maps, url: http://127.0.0.1:9000}\n"
    )
    config = printed_config(
        "--config",
        str(file),
        "--endpoint",
        "api=4000:http://127.0.0.1:9001",
        "--endpoint",
        "pay=4001:http://127.0.0.1:9002",
        "--set",
        "proxy.endpoints.1.timeout=2",
    )
    endpoints = config["proxy"]["endpoints"]
    assert [e["name"] for e in endpoints] == ["maps", "api", "pay"]
    assert endpoints[1]["timeout"] == {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}
    assert config["proxy"]["port"] == 5080


def test_files_merge_in_order_then_environment_then_set_then_host(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    # (beyond loopback, the dashboard needs auth: dashboard/test_settings.py)
    first.write_text(
        "proxy: {host: 0.0.0.0, port: 5000, grace_period: 1}\n"
        "dashboard: {auth: {username: a, password: b}}\n"
    )
    second = tmp_path / "b.toml"
    second.write_text("[proxy]\nport = 6000\n")
    config = printed_config(
        "-c",
        str(first),
        "-c",
        str(second),
        "--set",
        "proxy.grace_period=3",
        env={"FERRYMAN_PROXY__GRACE_PERIOD": "2", "FERRYMAN_PROXY__PORT": "7000"},
    )
    assert config["proxy"]["port"] == 7000  # the environment beats the files
    assert config["proxy"]["grace_period"] == 3.0  # --set beats the environment
    assert config["proxy"]["host"] == "0.0.0.0"
    assert printed_config("-c", str(first), "--host", "::1")["proxy"]["host"] == "::1"


def test_printed_configuration_loads_again_to_the_same(tmp_path: Path) -> None:
    printed = invoke("config", "-e", "api=4000:http://127.0.0.1:9", "--set", "proxy.port=0")
    file = tmp_path / "effective.yml"
    file.write_text(printed.stdout)
    assert invoke("config", "--config", str(file)).stdout == printed.stdout


@pytest.mark.parametrize("command", ["config", "start"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "proxy.port=abc"],
            "error: proxy.port: must be a whole number (got 'abc' from --set proxy.port=abc)",
        ),
        (
            ["--set", "nope=1"],
            "error: nope: unknown configuration key (no application listed in 'applications' "
            "reads it; the keys read are applications, cache, dashboard, logging, metrics, "
            "proxy, storage) "
            "(from --set nope=1)",
        ),
        (["--set", "proxy.port"], "error: --set 'proxy.port': expected key=value"),
        (
            ["-e", "api=4000:ftp://example.org"],
            "error: proxy.endpoints.0.url: 'ftp://example.org' must be an absolute http:// or "
            "https:// URL (from --endpoint api=4000:ftp://example.org)",
        ),
        (
            ["-e", "api=4000:http://127.0.0.1:9", "-e", "api=4001:http://127.0.0.1:9"],
            "error: proxy: two endpoints are named 'api' (from --endpoint "
            "api=4000:http://127.0.0.1:9, --endpoint api=4001:http://127.0.0.1:9)",
        ),
        (["-c", "missing.yml"], "error: missing.yml: configuration file not found"),
    ],
)
def test_bad_configuration_exits_2_naming_the_key(
    command: str, args: list[str], message: str
) -> None:
    result = invoke(command, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == message + "\n"
    assert "Traceback" not in result.stderr


def test_an_endpoint_error_names_the_option_it_came_from() -> None:
    result = invoke("config", "-e", "api=4000:http://127.0.0.1:9?q=1")
    assert result.exit_code == 2
    assert result.stderr.rstrip().endswith("(from --endpoint api=4000:http://127.0.0.1:9?q=1)")


def test_bad_configuration_file_names_line_and_column(tmp_path: Path) -> None:
    file = tmp_path / "bad.yml"
    file.write_text("proxy:\n  port: [\n")
    result = invoke("config", "-c", str(file))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {file}:3:1: invalid YAML")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("api", "no '='"),
        ("=4000:http://x", "no name before '='"),
        ("api=4000", "no ':' after '='"),
        ("api=port:http://x", "the port 'port' is not a number in 0..65535"),
        ("api=70000:http://x", "the port '70000' is not a number in 0..65535"),
        ("api=4000:", "the upstream URL after 'port:' is missing"),
    ],
)
def test_malformed_endpoint_option_is_one_usage_error_line(value: str, problem: str) -> None:
    result = invoke("start", "--endpoint", value)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Invalid value for '-e' / '--endpoint': ")
    assert problem in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_start_needs_the_proxy_application() -> None:
    result = invoke("start", "--set", "applications=[]")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: ferryman start serves the 'proxy' application, which 'applications' does not "
        "list (it lists nothing)\n"
    )


def test_reload_and_workers_exclude_each_other() -> None:
    result = invoke("start", "--reload", "--workers", "2")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --reload restarts a single process")


def test_workers_must_be_positive() -> None:
    result = invoke("start", "--workers", "0")
    assert result.exit_code == 2
    assert "--workers" in result.stderr


def test_unknown_option_is_one_line() -> None:
    result = invoke("start", "--bogus-option")
    assert result.exit_code == 2
    assert result.stderr == "error: No such option '--bogus-option'. (see 'main start --help')\n"


def test_proxy_module_needs_port_and_upstream() -> None:
    result = CliRunner().invoke(proxy_module_command, ["--port", "4000"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Missing option '--upstream'")


# -- the real commands, as processes --------------------------------------------------------------

COMMAND = [sys.executable, "-m", "ferryman.cli.main"]
ENDPOINT = ("--endpoint", "api=0:http://127.0.0.1:9", "--set", "proxy.port=0")


def run_command(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, command: list[str]
) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FERRYMAN_") or k == "FERRYMAN_DATA_DIR"  # (not configuration)
    }
    return subprocess.run(
        [*command, *args],
        env={**environment, **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["start", "config"])
@pytest.mark.parametrize(
    ("args", "env", "errors"),
    [
        pytest.param(
            [*ENDPOINT, "--set", "proxy.endpoints.0.request_options={htt2: true}"],
            {},
            [
                "proxy.endpoints.0.request_options.htt2: unknown key; did you mean 'http2'? "
                "(from --set proxy.endpoints.0.request_options={htt2: true})"
            ],
            id="request_options name",
        ),
        pytest.param(
            [*ENDPOINT, "--set", "proxy.endpoints.0.request_options={timeout: abc}"],
            {},
            [
                "proxy.endpoints.0.request_options.timeout: must be a number of seconds (all "
                "four phases), null (no limit), or a mapping of connect, read, write, pool "
                "(got 'abc' from --set proxy.endpoints.0.request_options={timeout: abc})"
            ],
            id="request_options value",
        ),
        pytest.param(
            [],
            {"FERRYMAN_PROXY__PORT": "abc"},
            ["proxy.port: must be a whole number (got 'abc' from FERRYMAN_PROXY__PORT)"],
            id="environment",
        ),
        pytest.param(
            ["--endpoint", "api=0:ftp://example.org", "--set", "proxy.port=0"],
            {},
            [
                "proxy.endpoints.0.url: 'ftp://example.org' must be an absolute http:// or "
                "https:// URL (from --endpoint api=0:ftp://example.org)"
            ],
            id="endpoint",
        ),
        pytest.param(
            [*ENDPOINT, "--set", "proxy.endpoints.0.port=abc"],
            {},
            [
                "proxy.endpoints.0.port: must be a whole number "
                "(got 'abc' from --set proxy.endpoints.0.port=abc)"
            ],
            id="set over an endpoint",
        ),
        pytest.param(
            ["--set", "proxy.port=0", "--set", "proxy.grace_periode=5"],
            {},
            [
                "proxy.grace_periode: unknown key; did you mean 'grace_period'? "
                "(from --set proxy.grace_periode=5)"
            ],
            id="misspelt key",
        ),
        pytest.param(
            ["--set", "proxy.port=0", "--set", "proxy.hots=0.0.0.0"],
            {"FERRYMAN_APPLICATIONS": "[proxy, no_such_app_xyz]"},
            [
                "applications.1: application 'no_such_app_xyz' cannot be loaded: it is not "
                "registered and there is no module ferryman.apps.no_such_app_xyz or "
                "ferryman.no_such_app_xyz (give a dotted path like 'mypkg.myapp:MyApplication') "
                "(from FERRYMAN_APPLICATIONS)",
                "proxy.hots: unknown key; did you mean 'host'? (from --set proxy.hots=0.0.0.0)",
            ],
            id="all at once",
        ),
    ],
)
def test_a_bad_configuration_exits_2_with_one_line_per_problem_naming_its_source(
    command: str, args: list[str], env: dict[str, str], errors: list[str]
) -> None:
    done = run_command(command, *args, env=env, command=COMMAND)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "".join(f"error: {error}\n" for error in errors)
    assert done.stdout == ""


@pytest.mark.parametrize("command", ["start", "config"])
def test_a_bad_configuration_file_is_named_with_its_line(command: str, tmp_path: Path) -> None:
    file = tmp_path / "ferryman.yml"
    file.write_text(
        "proxy:\n"
        "  port: 0\n"
        "  endpoints:\n"
        "    - name: api\n"
        "      port: 0\n"
        "      url: http://127.0.0.1:9\n"
        "      request_options:\n"
        "        http2: true\n"
        "        timeout: {connect: 1, reed: 5}\n"
    )
    done = run_command(command, "--config", str(file), command=COMMAND)
    assert done.returncode == 2
    assert done.stderr == (
        "error: proxy.endpoints.0.request_options.timeout: 'reed' is not a timeout phase: they "
        f"are connect, read, write, pool (from {file}:9)\n"
    )


def write_application(directory: Path, module: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{module}.py").write_text(
        "from ferryman.system import Application\n\n\n"
        "class Audit(Application):\n"
        "    name = 'audit'\n"
    )


def _console_script() -> str | None:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("ferryman", path=path)


@pytest.mark.skipif(_console_script() is None, reason="the ferryman script is not installed")
def test_applications_load_from_the_current_directory(tmp_path: Path) -> None:
    # The console script, not python -m (which puts the current directory on sys.path itself).
    write_application(tmp_path, "cwd_audit")
    (tmp_path / "ferryman.yml").write_text("applications: [proxy, 'cwd_audit:Audit']\n")
    script: Any = _console_script()
    done = run_command("config", "-c", "ferryman.yml", cwd=tmp_path, command=[script])
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["applications"] == ["proxy", "cwd_audit:Audit"]


@pytest.mark.skipif(_console_script() is None, reason="the ferryman script is not installed")
def test_app_dir_says_where_applications_load_from(tmp_path: Path) -> None:
    write_application(tmp_path / "apps", "dir_audit")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script: Any = _console_script()
    applications = ("--set", "applications=[proxy, 'dir_audit:Audit']")
    done = run_command(
        "config", *applications, "--app-dir", "../apps", cwd=elsewhere, command=[script]
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["applications"] == ["proxy", "dir_audit:Audit"]

    done = run_command("config", *applications, cwd=elsewhere, command=[script])
    assert done.returncode == 2
    assert done.stderr == (
        "error: applications.1: application 'dir_audit:Audit' cannot be loaded: there is no "
        f"module 'dir_audit' in {elsewhere} (the application directory) or elsewhere on "
        "Python's path (from --set applications=[proxy, 'dir_audit:Audit'])\n"
    )
