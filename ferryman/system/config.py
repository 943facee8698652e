"""Loading the configuration: files, then environment, then command line, then validation.

Sources apply in this order, each on top of the previous one:

1. :data:`DEFAULT_CONFIG` (only the ``applications`` list);
2. the files given, in order: YAML (``.yml``/``.yaml``) or TOML (``.toml``). Mappings merge key by
   key, recursively; anything else (lists included) is replaced by the later file;
3. ``FERRYMAN_*`` environment variables, ``__`` separating levels:
   ``FERRYMAN_STORAGE__URL=...`` sets ``storage.url``;
4. ``key=value`` overrides (``ferryman --set``), dotted: ``proxy.endpoints.0.port=4000``.

In 3 and 4, a number in the path indexes a list (the list's length appends to it), and a value is
read as a YAML scalar (``8080`` is an int, ``true`` a bool, an empty value is null) or, when it
starts with ``[`` or ``{``, as a YAML flow collection (``FERRYMAN_APPLICATIONS=[proxy, storage]``).

The result is then validated: each application named in ``applications`` is imported, the
settings under its key are validated with its ``settings_type``, and a top-level key no
application reads is an error. Every problem is reported as ``dotted.key.path: reason``.

Why not pydantic-settings: its sources feed one model known in advance, while here the model is
only known once the ``applications`` list has been read from those same sources.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from ferryman._compiled import SWITCHES
from ferryman.system.applications import Application, load_applications
from ferryman.system.errors import ConfigurationError

__all__ = [
    "DEFAULT_APPLICATIONS",
    "DEFAULT_CONFIG",
    "ResolvedConfig",
    "dump_config",
    "load_config",
    "merge_config",
    "parse_value",
    "read_config_file",
    "resolve_config",
    "set_config_value",
]

#: The applications a configuration runs when it does not say.
DEFAULT_APPLICATIONS: Final[tuple[str, ...]] = ("proxy",)
#: The bottom layer under every configuration.
DEFAULT_CONFIG: Final[Mapping[str, Any]] = MappingProxyType(
    {"applications": list(DEFAULT_APPLICATIONS)}
)

ENV_PREFIX: Final = "FERRYMAN_"
ENV_SEPARATOR: Final = "__"
#: ``FERRYMAN_`` variables that are not configuration: how the hot path is built and loaded.
NOT_CONFIGURATION: Final = frozenset(SWITCHES)

_APPLICATION_NAMES: Final = TypeAdapter(list[str])
_TOML_POSITION = re.compile(r"^(?P<reason>.*?) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """A validated configuration: the application classes and their settings models."""

    applications: tuple[type[Application], ...]
    #: ``"applications"`` -> the names as listed; each application's key -> its settings model.
    settings: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain data again, every default filled in, which resolves to the same settings."""
        data: dict[str, Any] = {"applications": list(self.settings["applications"])}
        for application in self.applications:
            model = self.settings.get(application.name)
            if model is not None:
                data[application.name] = model.model_dump(by_alias=True)
        return data


def load_config(
    files: Sequence[str | Path] = (),
    *,
    env: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Read, merge and validate the configuration; raise :class:`ConfigurationError` if wrong.

    ``env`` defaults to ``os.environ``. The result has every default filled in, and is what
    :class:`~ferryman.system.SystemBuilder` takes and :func:`dump_config` prints.
    """
    if env is None:
        env = os.environ
    config = merge_config({}, DEFAULT_CONFIG)
    for file in files:
        config = merge_config(config, read_config_file(file))
    for variable in sorted(env):
        if variable.startswith(ENV_PREFIX) and variable not in NOT_CONFIGURATION:
            path = variable.removeprefix(ENV_PREFIX).lower().split(ENV_SEPARATOR)
            _assign(config, path, env[variable], source=variable)
    for override in overrides:
        key, equals, text = override.partition("=")
        if not equals:
            raise ConfigurationError(f"--set {override!r}: expected key=value")
        _assign(config, key.strip().split("."), text, source=f"--set {override}")
    return resolve_config(config).to_dict()


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML or TOML file holds (an empty file holds an empty one)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yml", ".yaml", ".toml"):
        raise ConfigurationError(
            f"{path}: unsupported configuration format {suffix or '(no extension)'!r}, "
            "use .yaml, .yml or .toml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read configuration file: {exc}") from exc
    data: object
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            position = _TOML_POSITION.match(str(exc))
            where = f"{path}:{position['line']}:{position['column']}" if position else f"{path}"
            reason = position["reason"] if position else str(exc)
            raise ConfigurationError(f"{where}: invalid TOML: {reason}") from exc
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else f"{path}"
            raise ConfigurationError(f"{where}: invalid YAML: {exc.problem}") from exc
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{path}: the top level must be a mapping of settings, got a {type(data).__name__}"
        )
    return data


def merge_config(base: Mapping[Any, Any], override: Mapping[Any, Any]) -> dict[Any, Any]:
    """``override`` laid over ``base``: mappings merge recursively, other values are replaced.

    Neither input is modified nor shared with the result, which callers may then edit.
    """
    merged: dict[Any, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_config(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_value(text: str) -> Any:
    """Read an environment or ``--set`` value the way YAML reads an unquoted value.

    A whole value is one scalar (``a: b`` and ``#fff`` stay strings) unless it starts with
    ``[`` or ``{``, which makes it a flow collection.
    """
    if text.lstrip().startswith(("[", "{")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or exc
            raise ConfigurationError(f"invalid YAML value {text!r}: {reason}") from exc
    loader = yaml.SafeLoader("")
    try:
        tag = loader.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        return loader.construct_object(yaml.ScalarNode(tag, text))
    finally:
        loader.dispose()


def set_config_value(
    config: dict[str, Any], path: Sequence[str], value: Any, *, source: str
) -> None:
    """Set ``value`` at ``path`` in ``config``, creating the mappings and lists on the way.

    A missing or null level becomes a list when the next key is a number, a mapping otherwise.
    ``source`` (an environment variable, a ``--set`` argument) prefixes any error.
    """
    dotted = ".".join(path)
    if not path or not all(path):
        raise ConfigurationError(f"{source}: empty key in {dotted!r}")
    node: Any = config
    for depth, key in enumerate(path):
        last = depth == len(path) - 1
        parent = ".".join(path[:depth]) or "the configuration"
        slot: Any
        if isinstance(node, dict):
            slot = key
        elif isinstance(node, list):
            if not key.isdecimal():
                raise ConfigurationError(
                    f"{source}: cannot set {dotted}: {parent} is a list, {key!r} is not an index"
                )
            slot = int(key)
            if slot > len(node):
                raise ConfigurationError(
                    f"{source}: cannot set {dotted}: {parent} has {len(node)} items, "
                    f"index {slot} would leave a gap"
                )
            if slot == len(node):
                node.append(None)
        else:
            raise ConfigurationError(
                f"{source}: cannot set {dotted}: {parent} is a {type(node).__name__}, "
                "not a mapping or a list"
            )
        if last:
            node[slot] = value
            return
        child = node.get(slot) if isinstance(node, dict) else node[slot]
        if child is None:
            child = [] if path[depth + 1].isdecimal() else {}
            node[slot] = child
        node = child


def _assign(config: dict[str, Any], path: Sequence[str], text: str, *, source: str) -> None:
    try:
        value = parse_value(text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: {exc}") from exc.__cause__
    set_config_value(config, path, value, source=source)


def resolve_config(config: Mapping[str, Any]) -> ResolvedConfig:
    """Import the applications ``config`` names and validate the settings of each.

    Without an ``applications`` key, :data:`DEFAULT_APPLICATIONS` run.
    """
    try:
        names = _APPLICATION_NAMES.validate_python(config.get("applications", DEFAULT_APPLICATIONS))
    except ValidationError as exc:
        raise ConfigurationError(*_describe(exc, "applications")) from None
    applications = load_applications(names)
    known = {"applications", *(application.name for application in applications)}
    unknown = sorted(str(key) for key in config if key not in known)
    if unknown:
        raise ConfigurationError(
            *(
                f"{key}: unknown configuration key (no application listed in 'applications' "
                f"reads it; the keys read are {', '.join(sorted(known))})"
                for key in unknown
            )
        )
    settings: dict[str, Any] = {"applications": names}
    problems: list[str] = []
    for application in applications:
        raw = config.get(application.name)
        if application.settings_type is None:
            if raw is not None:
                problems.append(
                    f"{application.name}: the application takes no settings "
                    f"(got {_short_repr(raw)})"
                )
            continue
        try:
            settings[application.name] = application.settings_type.model_validate(
                {} if raw is None else raw
            )
        except ValidationError as exc:
            problems.extend(_describe(exc, application.name))
    if problems:
        raise ConfigurationError(*problems)
    return ResolvedConfig(tuple(applications), MappingProxyType(settings))


def dump_config(config: Mapping[str, Any]) -> str:
    """YAML for ``ferryman config``: loadable again, with secrets (``SecretStr``) masked."""
    data = to_jsonable_python(dict(config))
    dumped: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return dumped


def _describe(error: ValidationError, prefix: str) -> list[str]:
    """One ``dotted.path: reason (got value)`` line per problem pydantic found."""
    lines = []
    for problem in error.errors(include_url=False):
        path = ".".join([prefix, *(str(part) for part in problem["loc"])])
        got = "" if problem["type"] == "missing" else f" (got {_short_repr(problem['input'])})"
        lines.append(f"{path}: {problem['msg']}{got}")
    return lines


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
