"""What the README tells a user to run runs: its first command, its config example, its code."""

from __future__ import annotations

import re
import shlex
import signal
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from ferryman.cli.main import main
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
