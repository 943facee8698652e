"""Where the proxy's hot path is loaded from: its compiled modules, or their sources.

``setup.py`` compiles a few modules with mypyc and records, in ``_hotpath.json``, the SHA-256
of each source it compiled. A compiled module sits beside its source and Python prefers it, so
after a source is edited (an editable install, a ``git pull``) the old compiled code would run
in its place, silently. Importing this module (``ferryman/__init__`` does it first) compares the
sources with the manifest; if one changed, or ``FERRYMAN_PURE_PYTHON=1`` asks for it, every
compiled module of the group is loaded from its source instead (they call each other directly,
so they go together), with a warning in the first case. ``pip install -e .`` compiles again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from importlib.util import spec_from_file_location
from types import ModuleType
from typing import Final

__all__ = ["PURE_PYTHON_ENV", "SWITCHES", "StaleBuildWarning", "compiled_modules", "mode"]

#: Set to 1 to run every module from its source (profilers then see into the hot path).
PURE_PYTHON_ENV: Final = "FERRYMAN_PURE_PYTHON"
#: The environment variables of the build (setup.py's ``FERRYMAN_COMPILE=0``) and of this
#: module, which the configuration's ``FERRYMAN_*`` variables must not take for keys.
SWITCHES: Final = ("FERRYMAN_COMPILE", PURE_PYTHON_ENV)
_PACKAGE_DIR: Final = os.path.dirname(os.path.abspath(__file__))
_MANIFEST: Final = os.path.join(_PACKAGE_DIR, "_hotpath.json")


class StaleBuildWarning(RuntimeWarning):
    """A compiled module was built from another version of its source: the source runs."""


def _source_path(module: str) -> str:
    return os.path.join(os.path.dirname(_PACKAGE_DIR), *module.split(".")) + ".py"


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as source:
            return hashlib.sha256(source.read()).hexdigest()
    except OSError:
        return None  # no source beside it: the compiled module is all there is


def _read_manifest() -> dict[str, str]:
    try:
        with open(_MANIFEST, encoding="utf-8") as manifest:
            built = json.load(manifest)
    except (OSError, ValueError):
        return {}  # not compiled (no compiler, FERRYMAN_COMPILE=0, or a source checkout)
    return {str(module): str(digest) for module, digest in built.items()}


class _FromSource(MetaPathFinder):
    """Finds the listed modules' ``.py`` files ahead of the compiled ones."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        source = _source_path(fullname)
        if fullname not in self.modules or not os.path.exists(source):
            return None  # (an install without sources: the compiled module is all there is)
        return spec_from_file_location(fullname, source)


def _leftovers(built: dict[str, str]) -> list[str]:
    """Modules with a compiled file beside their source that the last build did not compile.

    A module taken off the hot path keeps the extension an earlier build left (an editable
    install, a ``git pull``): Python would prefer it to the source and fail to load it from a
    group library that no longer holds it. Those modules run from their source.
    """
    found = []
    root = os.path.dirname(_PACKAGE_DIR)
    for directory, _, files in os.walk(_PACKAGE_DIR):
        for name in files:
            suffix = next((s for s in EXTENSION_SUFFIXES if name.endswith(s)), None)
            if suffix is None or not os.path.exists(
                os.path.join(directory, name[: -len(suffix)] + ".py")
            ):
                continue
            relative = os.path.relpath(os.path.join(directory, name[: -len(suffix)]), root)
            module = relative.replace(os.sep, ".")
            if module not in built:
                found.append(module)
    return found


def _choose() -> tuple[str, dict[str, str]]:
    built = _read_manifest()
    leftovers = _leftovers(built)
    if leftovers:
        sys.meta_path.insert(0, _FromSource(leftovers))
    if not built:
        return "pure Python (not compiled)", {}
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        sys.meta_path.insert(0, _FromSource(list(built)))
        return f"pure Python ({PURE_PYTHON_ENV})", {}
    changed = [
        module
        for module, digest in built.items()
        if _digest(_source_path(module)) not in (digest, None)
    ]
    if changed:
        sys.meta_path.insert(0, _FromSource(list(built)))
        warnings.warn(
            f"ferryman: {', '.join(changed)} changed since it was compiled; running the hot "
            "path from source (slower): run `pip install -e .` again to compile it",
            StaleBuildWarning,
            stacklevel=2,
        )
        return f"pure Python (changed since compiled: {', '.join(changed)})", {}
    return "compiled", built


#: How the hot path runs in this process: "compiled", or "pure Python (why)".
mode, _running_compiled = _choose()


def compiled_modules() -> dict[str, str]:
    """The modules running compiled, each with the SHA-256 of the source it was built from."""
    return dict(_running_compiled)
