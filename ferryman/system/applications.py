"""The application protocol: how a feature plugs itself into the system.

An application is one class that says, in one place, what it reads from the configuration and
what it does at each step of the system's life::

    class StorageSettings(Settings):
        url: str = "sqlite+aiosqlite:///:memory:"

    class StorageApplication(Application):
        name = "storage"                  # its settings live under the "storage" key
        settings_type = StorageSettings   # and are validated with this model
        settings: StorageSettings         # (narrows the type of self.settings)

        def on_bind(self, event: OnBindEvent) -> None:
            event.container.add(Storage, SqlStorage)

        async def on_bound(self, event: OnBoundEvent) -> None:
            await event.provider.resolve(Storage).connect(self.settings.url)

Each of ``on_bind``, ``on_bound``, ``on_ready`` and ``on_shutdown`` is optional and may be
synchronous or ``async``. The configuration's ``applications`` list names the applications to
load, in order:

* a short name (``"storage"``) is looked up in the registry filled by
  :func:`register_application`, then in ``ferryman.apps.storage`` and ``ferryman.storage``;
* a dotted name is imported: ``"mypkg.myapp:MyApplication"`` names the class,
  ``"mypkg.myapp"`` a module whose ``application`` attribute is the class.

Dotted names are imported from the application directory first (:func:`use_app_dir`; the
command line's ``--app-dir``, the current directory by default), as uvicorn imports
``module:app``: an ``audit.py`` in the directory ``ferryman start`` runs in loads as
``audit:Audit`` without ``PYTHONPATH=.``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ferryman.system.errors import ConfigurationError

__all__ = [
    "Application",
    "Settings",
    "load_application",
    "load_applications",
    "register_application",
    "try_load_applications",
    "use_app_dir",
]

# Short name -> "module:Class". Applications shipped elsewhere get a short name here.
_registry: dict[str, str] = {}

#: Where a short name not in the registry is looked for, in order.
SHORT_NAME_MODULES = ("ferryman.apps.{name}", "ferryman.{name}")

#: The directory :func:`use_app_dir` put first on ``sys.path``, for the words of an import error.
_app_dir: str | None = None


class Settings(BaseModel):
    """A base for application settings that refuses unknown keys, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    @property
    def secret_headers(self) -> frozenset[str]:
        """Request header names (lower-case) whose values these settings make secrets (an
        API key a limit is keyed by): an application that keeps or shows headers (the
        storage) redacts them as well as its own list."""
        return frozenset()


class Application:
    """Base class of every application; see the module documentation for the protocol."""

    #: The application's key in the configuration; also how errors and dumps name it.
    name: ClassVar[str]
    #: Validates the settings under ``name``; ``None`` when the application takes none.
    settings_type: ClassVar[type[BaseModel] | None] = None

    def __init__(self, settings: BaseModel | None = None) -> None:
        #: This application's validated settings (an instance of ``settings_type``).
        self.settings = settings

    @classmethod
    def check_settings(
        cls, settings: Mapping[str, Any], source: Callable[[str], str | None]
    ) -> list[str]:
        """Problems only the whole configuration shows (this application's settings against
        another's: the dashboard without auth on a host beyond loopback), as ``key: reason``
        lines; called once every application's settings are valid, before anything starts,
        so ``ferryman start`` refuses with the other configuration errors. ``settings`` is
        the validated configuration (``settings[name]`` the models); ``source("proxy.host")``
        says where a value came from (``--host``, ``ferryman.yml:3``), ``None`` if unknown."""
        return []


def register_application(name: str, target: str) -> None:
    """Make the short ``name`` load ``target`` (``"module:Class"`` or a module exposing
    ``application``); a later registration of the same name replaces the earlier one."""
    if not name or "." in name or ":" in name:
        raise ValueError(f"a short application name has no '.' or ':', got {name!r}")
    _registry[name] = target


def use_app_dir(directory: str | os.PathLike[str]) -> str:
    """Import applications from ``directory`` before anywhere else: its absolute path goes to
    the front of ``sys.path``, as ``uvicorn --app-dir`` does. Returns that path."""
    global _app_dir
    path = os.path.abspath(directory)
    if not sys.path or sys.path[0] != path:
        sys.path.insert(0, path)
    importlib.invalidate_caches()  # files written since the directory was last looked at
    _app_dir = path
    return path


def load_applications(names: Sequence[str]) -> list[type[Application]]:
    """Load the ``applications`` list of a configuration, refusing two with the same key.

    Every entry that cannot be loaded is reported, not only the first.
    """
    loaded, problems = try_load_applications(names)
    if problems:
        raise ConfigurationError(*(f"applications.{index}: {reason}" for index, reason in problems))
    return loaded


def try_load_applications(
    names: Sequence[str],
) -> tuple[list[type[Application]], list[tuple[int, str]]]:
    """The applications of ``names`` that load, and for each entry that does not, its index
    and why; so that the settings of those that load can be checked all the same."""
    loaded: list[type[Application]] = []
    problems: list[tuple[int, str]] = []
    index_of_key: dict[str, int] = {}
    for index, entry in enumerate(names):
        try:
            application = load_application(entry)
        except ConfigurationError as exc:
            problems.append((index, str(exc)))
            continue
        previous = index_of_key.setdefault(application.name, index)
        if previous != index:
            problems.append(
                (
                    index,
                    f"{entry!r} uses the key {application.name!r}, "
                    f"already used by applications.{previous} ({names[previous]!r})",
                )
            )
            continue
        loaded.append(application)
    return loaded, problems


def load_application(name: str) -> type[Application]:
    """Import the application class an entry of the ``applications`` list names."""
    if ":" in name or "." in name:
        return _load_target(name, name)
    if name in _registry:
        return _load_target(name, _registry[name])
    for template in SHORT_NAME_MODULES:
        module_name = template.format(name=name)
        if _module_exists(name, module_name):
            return _load_target(name, module_name)
    raise ConfigurationError(
        f"application {name!r} cannot be loaded: it is not registered and there is no module "
        f"{' or '.join(t.format(name=name) for t in SHORT_NAME_MODULES)} "
        "(give a dotted path like 'mypkg.myapp:MyApplication')"
    )


def _module_exists(name: str, module_name: str) -> bool:
    """Whether the module is there, telling "absent" apart from "present but fails to import"."""
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing module *we asked for* (or a parent package) means "not there".
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            return False
        raise ConfigurationError(_cannot_load(name, exc)) from exc
    except Exception as exc:
        raise ConfigurationError(_cannot_load(name, exc)) from exc
    return True


def _load_target(name: str, target: str) -> type[Application]:
    module_name, _, attribute = target.partition(":")
    try:
        found: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise ConfigurationError(_not_found(name, exc.name)) from exc
        raise ConfigurationError(_cannot_load(name, exc)) from exc
    except Exception as exc:
        raise ConfigurationError(_cannot_load(name, exc)) from exc
    path = attribute.split(".") if attribute else ["application"]
    for part in path:
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigurationError(
                f"application {name!r} cannot be loaded: {module_name} has no attribute "
                f"{'.'.join(path)!r}"
            ) from None
    if not (isinstance(found, type) and issubclass(found, Application)):
        raise ConfigurationError(
            f"application {name!r} cannot be loaded: {module_name}:{'.'.join(path)} is "
            f"{found!r}, not a subclass of ferryman.system.Application"
        )
    key = getattr(found, "name", None)
    if not isinstance(key, str) or not key or "." in key or key == "applications":
        raise ConfigurationError(
            f"application {name!r} cannot be loaded: {found.__qualname__}.name must be a "
            f"non-empty configuration key without '.' other than 'applications', got {key!r}"
        )
    settings_type = found.settings_type
    if settings_type is not None and not (
        isinstance(settings_type, type) and issubclass(settings_type, BaseModel)
    ):
        raise ConfigurationError(
            f"application {name!r} cannot be loaded: {found.__qualname__}.settings_type must "
            f"be a pydantic model class or None, got {settings_type!r}"
        )
    return found


def _cannot_load(name: str, exc: Exception) -> str:
    # The module is there and failed: its error, named as Python names it, is for its author.
    return f"application {name!r} cannot be loaded: {type(exc).__name__}: {exc}"


def _not_found(name: str, module_name: str) -> str:
    where = "on Python's path"
    if _app_dir is not None:
        where = f"in {_app_dir} (the application directory) or elsewhere {where}"
    return f"application {name!r} cannot be loaded: there is no module {module_name!r} {where}"
