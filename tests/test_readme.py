"""What the README tells a user to run runs: its first command, its config example, its code."""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
import signal
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

import ferryman
from ferryman.cli.main import main
from ferryman.client.filtering import EVENT_FILTER_HTTP_CLIENT_REQUEST, HttpClientFilterEvent
from ferryman.proxy.context import default_session
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST, ProxyFilterEvent
from ferryman.proxy.settings import TimeoutSettings
from ferryman.server.events import (
    EVENT_CORE_CONTROLLER,
    EVENT_CORE_REQUEST,
    EVENT_CORE_RESPONSE,
    ControllerEvent,
    RequestEvent,
    ResponseEvent,
)
from tests.cli.proxy_process import ProxyProcess

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)


def test_first_line_installs_and_starts_the_proxy() -> None:
    first = blocks("sh")[0].splitlines()[0]
    install, _, start = first.partition("#")[0].partition("&&")
    assert install.split() == ["pip", "install", "-e", "."]
    words = shlex.split(start)
    assert words[:2] == ["ferryman", "start"]
    # As written, but on ports nobody else uses: the command itself needs no server anywhere.
    args = [re.sub(r"=\d+:", "=0:", word) for word in words[2:]]
    proxy = ProxyProcess(
        [*args, "--set", "proxy.port=0"],
        command=[sys.executable, "-m", "ferryman.cli.main", "start"],
    )
    try:
        proxy.wait_serving()
        assert "ferryman: endpoint api on http://127.0.0.1:" in proxy.output
        proxy.signal(signal.SIGTERM)
        assert proxy.wait() == 0
    finally:
        proxy.stop()


def test_second_line_is_the_test_command() -> None:
    second = blocks("sh")[0].splitlines()[1]
    assert second.partition("#")[0].split() == [
        "pip",
        "install",
        "-e",
        "'.[test]'",
        "&&",
        "make",
        "check",
    ]


def test_configuration_example_is_valid(tmp_path: Path) -> None:
    [example] = [block for block in blocks("yaml") if "endpoints:" in block]
    file = tmp_path / "ferryman.yml"
    file.write_text(example)
    result = CliRunner().invoke(main, ["config", "--config", str(file)])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert [e["name"] for e in printed["proxy"]["endpoints"]] == ["payments", "maps"]


def test_proxy_examples_run() -> None:
    examples = [code for code in blocks("python") if "from ferryman.proxy import" in code]
    assert len(examples) == 2
    for code in examples:
        namespace: dict[str, object] = {}
        exec(compile(code, str(README), "exec"), namespace)


def text() -> str:
    """The README as one paragraph stream: lines joined, so a phrase may span a line break."""
    return " ".join(README.read_text().split())


def test_event_table_lists_each_event_class_and_its_attributes() -> None:
    classes = {
        EVENT_CORE_REQUEST: RequestEvent,
        EVENT_CORE_CONTROLLER: ControllerEvent,
        EVENT_FILTER_PROXY_REQUEST: ProxyFilterEvent,
        EVENT_FILTER_HTTP_CLIENT_REQUEST: HttpClientFilterEvent,
        EVENT_CORE_RESPONSE: ResponseEvent,
    }
    rows = re.findall(r"^\| `([\w.]+)` \| `(\w+)` \| ([^|]+) \|", README.read_text(), re.M)
    assert {event for event, _, _ in rows} == set(classes)
    for event, name, attributes in rows:
        cls = classes[event]
        assert cls.__name__ == name
        assert set(re.findall(r"`(\w+)`", attributes)) == set(cls.__slots__), event


def test_the_response_a_listener_sets_is_the_one_shown() -> None:
    [example] = re.findall(r"`(ferryman\.Response\(.*?\))`", text())
    response = eval(example, {"ferryman": ferryman})
    assert isinstance(response, ferryman.http.Response) and response.status_code == 403


def test_websocket_handler_signatures_are_the_ws_methods() -> None:
    documented = dict(re.findall(r"`(on_\w+)\(([\w, ]*)\)`", text()))
    assert documented.keys() == {"on_open", "on_message", "on_ping", "on_pong", "on_close"}
    for name, arguments in documented.items():
        parameters = list(inspect.signature(getattr(ferryman.WS, name)).parameters)
        assert ["self", *arguments.split(", ")] == parameters, name


def test_the_proxy_timeouts_are_the_defaults() -> None:
    paragraph = text().partition("An endpoint's `timeout` bounds each upstream call")[2]
    said = {
        phase: float(seconds)
        for phase, seconds in re.findall(r"`(connect|read|write|pool)` (\d+)", paragraph)
    }
    assert said == TimeoutSettings().model_dump()


def test_store_cookies_default_is_the_one_said() -> None:
    assert "the session's `store_cookies` is `True` by default" in text()
    assert inspect.signature(ferryman.AsyncClient).parameters["store_cookies"].default is True
    assert "`False` keeps none, as the proxy's session does" in text()
    assert default_session().store_cookies is False


def test_the_coming_from_tables_name_what_exists() -> None:
    """Every ``ferryman.…`` name the migration tables give resolves (a renamed class or a
    face moved elsewhere fails here, not in a migrating user's first line)."""
    section = README.read_text().split("## Coming from", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`(?:from |import )?(ferryman(?:\.\w+)+)", section))
    assert len(names) > 15
    for name in sorted(names):
        parts = name.split(".")
        for split in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            for attribute in parts[split:]:
                found = getattr(found, attribute)
            break
        else:
            raise AssertionError(f"{name} cannot be imported")
