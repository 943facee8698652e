"""ferryman's build: the metadata is in pyproject.toml; this compiles the proxy's hot path.

The modules a relayed request runs through (``HOT_PATH``) are compiled with mypyc, which turns
their typed Python into a C extension: on the issue-4 benchmark it took the proxy's user CPU per
request from 9.3 to 6.8 µs (``benchmarks/proxy_cpu_split.sh``). The sources stay the truth:
``ferryman/_compiled.py`` runs a module from its source whenever that source changed after the
build, or when ``FERRYMAN_PURE_PYTHON=1``.

Compiling needs mypy (a build requirement) and a C compiler. Without them, or with
``FERRYMAN_COMPILE=0``, ferryman installs as pure Python: the same behaviour, more CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

#: Compiled together (one group: calls between them stay C calls), in import order.
HOT_PATH = (
    "ferryman/server/limits.py",
    "ferryman/server/exchange.py",
    "ferryman/server/protocol.py",
    "ferryman/http/caching/directives.py",
    "ferryman/http/caching/entry.py",
    "ferryman/http/caching/policy.py",
    "ferryman/proxy/headers.py",
    "ferryman/proxy/targets.py",
    "ferryman/proxy/upstream.py",
    "ferryman/proxy/breaker.py",
    "ferryman/proxy/relay_resilience.py",
    "ferryman/proxy/relay.py",
    "ferryman/proxy/relay_cache.py",
    "ferryman/proxy/transactions.py",
    "ferryman/apps/accesslog/formats.py",
    "ferryman/apps/metrics/counters.py",
)
#: The group's shared library: ``ferryman/_hotpath__mypyc.*.so``, inside the package.
GROUP = "ferryman._hotpath"
#: Which modules were compiled, from which source (SHA-256): beside the compiled modules.
MANIFEST = "_hotpath.json"
#: Commands that build extensions; metadata-only ones skip mypy's type check.
BUILDING = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


def _say(message: str) -> None:
    print(f"ferryman build: {message}", file=sys.stderr)


def _digest(path: str) -> str:
    with open(path, "rb") as source:
        return hashlib.sha256(source.read()).hexdigest()


def _extensions() -> list[Any]:
    if os.environ.get("FERRYMAN_COMPILE", "1") == "0":
        _say("FERRYMAN_COMPILE=0: installing the hot path as pure Python")
        return []
    if not BUILDING.intersection(sys.argv[1:]):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("mypyc is not installed: installing the hot path as pure Python")
        return []
    try:
        # The build environment has none of ferryman's dependencies: what the hot path
        # imports from them is typed Any here (`make types` checks it all, strictly).
        return list(
            mypycify(
                ["--ignore-missing-imports", "--follow-imports=silent", *HOT_PATH],
                group_name=GROUP,
                opt_level="3",
            )
        )
    except (Exception, SystemExit) as error:  # mypyc exits on a type error
        _say(f"mypyc could not compile the hot path ({error!r}): installing it as pure Python")
        return []


class BuildHotPath(build_ext):
    """Compiles the hot path and writes its manifest; falls back to pure Python on failure."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as error:  # a missing compiler or header: distutils' errors vary
            _say(f"compiling the hot path failed ({error}): installing it as pure Python")
            self._remove_outputs()
            self.extensions = []
            return
        manifest = {path[:-3].replace("/", "."): _digest(path) for path in HOT_PATH}
        with open(os.path.join(self._package_dir(), MANIFEST), "w") as out:
            json.dump(manifest, out, indent=1, sort_keys=True)

    def _package_dir(self) -> str:
        """Where the compiled modules went: the source tree (editable installs) or the build."""
        if self.inplace:
            return str(self.get_finalized_command("build_py").get_package_dir("ferryman"))
        return os.path.join(self.build_lib, "ferryman")

    def _remove_outputs(self) -> None:
        """Half a group must not be left behind: its modules would fail to import."""
        for path in self.get_outputs():
            if os.path.exists(path):
                os.remove(path)

    def get_outputs(self) -> list[str]:
        outputs = list(super().get_outputs())
        if self.extensions:
            outputs.append(os.path.join(self._package_dir(), MANIFEST))
        return outputs


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildHotPath})
