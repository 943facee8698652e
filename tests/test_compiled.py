"""The hot path runs compiled when the install compiled it, and never in place of a newer source.

Each check that loads modules does it in a fresh interpreter that sees a copy of the package
(never the editable install's finder), so it can change a source without touching the tree.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import ferryman
from ferryman import _compiled

PACKAGE = Path(ferryman.__file__).parent
EXTENSION = sysconfig.get_config_var("EXT_SUFFIX")


def _require_compiled() -> dict[str, str]:
    built = _compiled.compiled_modules()
    if built:
        return built
    if os.environ.get("CI"):  # .ci/run: the build must have compiled
        pytest.fail(f"the hot path is not compiled in CI: {_compiled.mode}")
    pytest.skip(f"this install did not compile the hot path: {_compiled.mode}")


def _load(package_copy: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Import the hot path from ``package_copy`` in a fresh interpreter: where each came from."""
    # -S: no site processing, so no .pth file installs the editable finder; the dependencies
    # come from site-packages all the same.
    code = (
        "import json, sys, warnings; warnings.simplefilter('always');"
        f"sys.path[:0] = [{str(package_copy.parent)!r}];"
        f"sys.path += {site.getsitepackages()!r};"
        "import ferryman, ferryman._compiled as c;"
        f"modules = {sorted(_compiled_names())!r};"
        "[__import__(name) for name in modules];"
        "print(json.dumps({'mode': c.mode,"
        " **{name: sys.modules[name].__file__ for name in modules}}))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=True,
    )
    loaded: dict[str, str] = json.loads(done.stdout)
    loaded["stderr"] = done.stderr
    return loaded


def _compiled_names() -> list[str]:
    return list(_compiled.compiled_modules()) or ["ferryman.proxy.relay"]


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "ferryman"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_hot_path_runs_compiled_when_the_install_compiled_it() -> None:
    built = _require_compiled()
    assert _compiled.mode == "compiled"
    for name in built:
        module = sys.modules.get(name) or __import__(name, fromlist=["_"])
        assert str(module.__file__).endswith(EXTENSION), name


def test_a_source_edited_after_the_build_runs_instead_of_its_compiled_module(
    package_copy: Path,
) -> None:
    built = _require_compiled()
    assert _load(package_copy)["mode"] == "compiled"
    relay = package_copy / "proxy" / "relay.py"
    relay.write_text(relay.read_text() + "\n# edited after the build\n")

    loaded = _load(package_copy)

    assert loaded["mode"] == "pure Python (changed since compiled: ferryman.proxy.relay)"
    # The whole group: compiled modules call one another directly, not through sys.modules.
    for name in built:
        assert loaded[name].endswith(".py"), name
    assert "StaleBuildWarning" in loaded["stderr"]
    assert "pip install -e ." in loaded["stderr"]


def test_pure_python_is_one_variable_away(package_copy: Path) -> None:
    built = _require_compiled()
    loaded = _load(package_copy, {_compiled.PURE_PYTHON_ENV: "1"})
    assert loaded["mode"] == "pure Python (FERRYMAN_PURE_PYTHON)"
    for name in built:
        assert loaded[name].endswith(".py"), name
    assert "StaleBuildWarning" not in loaded["stderr"]


def test_without_a_build_every_module_is_its_source(package_copy: Path) -> None:
    for path in package_copy.rglob(f"*{EXTENSION}"):
        path.unlink()
    (package_copy / "_hotpath.json").unlink(missing_ok=True)
    loaded = _load(package_copy)
    assert loaded["mode"] == "pure Python (not compiled)"
    assert loaded["ferryman.proxy.relay"].endswith("relay.py")


def test_a_compiled_file_the_build_no_longer_makes_does_not_shadow_its_source(
    package_copy: Path,
) -> None:
    # What an earlier build left of a module since taken off the hot path (here: a file
    # that is no extension at all, which Python would fail to load).
    leftover = package_copy / "proxy" / f"balancer{EXTENSION}"
    leftover.write_bytes(b"not a shared library")
    code = (
        f"import sys; sys.path[:0] = [{str(package_copy.parent)!r}];"
        f"sys.path += {site.getsitepackages()!r};"
        "import ferryman.proxy.balancer as b; print(b.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("balancer.py")
