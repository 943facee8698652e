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
application reads is an error. Every problem is reported as ``dotted.key.path: reason``, with the
source of the value (``FERRYMAN_PROXY__PORT``, ``ferryman.yml:4``, ``--set ...``: see
:mod:`ferryman.system.problems`), and all of them at once: a value that cannot be set does not
hide the others, and the settings of the applications that load are checked even when another
one does not. Only a file that cannot be read stops the settings from being judged: what it
holds is unknown, and they would be judged without what it may well set.

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
from ferryman.system.applications import Application, try_load_applications
from ferryman.system.errors import ConfigurationError
from ferryman.system.problems import (
    KeyPath,
    Sources,
    describe_errors,
    show_value,
    unknown_key,
)

__all__ = [
    "DEFAULT_APPLICATIONS",
    "DEFAULT_CONFIG",
    "ConfigLayers",
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
DEFAULT_APPLICATIONS: Final[tuple[str, ...]] = (
    "proxy",
    "cache",
    "accesslog",
    "metrics",
    "storage",
    "dashboard",
)
#: The bottom layer under every configuration.
DEFAULT_CONFIG: Final[Mapping[str, Any]] = MappingProxyType(
    {"applications": list(DEFAULT_APPLICATIONS)}
)

ENV_PREFIX: Final = "FERRYMAN_"
ENV_SEPARATOR: Final = "__"
#: ``FERRYMAN_`` variables that are not configuration: how the hot path is built and loaded,
#: where ferryman keeps its data (the storage's default SQLite file), and ``ferryman tail``'s.
NOT_CONFIGURATION: Final = frozenset(
    (
        *SWITCHES,
        "FERRYMAN_DATA_DIR",
        "FERRYMAN_TAIL_URL",
        "FERRYMAN_TAIL_USER",
        "FERRYMAN_TAIL_PASSWORD",
    )
)

#: Prefixes of variables that belong to tools around ferryman: the benchmark harness's
#: (``../shared/bench``: ``FERRYMAN_BENCH_VENV``, ``FERRYMAN_BENCH_WORKDIR``...), which reach a
#: ferryman it starts as a candidate.
NOT_CONFIGURATION_PREFIXES: Final = ("FERRYMAN_BENCH_",)

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


class ConfigLayers:
    """The configuration as its sources lay it down, each over the ones before, remembering
    which source set each value and collecting the problems met on the way.

    :func:`load_config` lays files, the environment and ``--set`` overrides; ``ferryman start``
    adds ``--endpoint`` and ``--host`` in their places (:mod:`ferryman.cli.options`).
    :meth:`resolve` validates the result and reports every problem, each with its source.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = merge_config({}, DEFAULT_CONFIG)
        self.sources = Sources()
        self.problems: list[str] = []
        self._unread_file = False

    def add_file(self, path: str | Path) -> None:
        """Merge a YAML or TOML file (mappings key by key, anything else replaced)."""
        try:
            data, lines = _read_file(Path(path))
        except ConfigurationError as exc:
            self.problems.extend(exc.problems)
            self._unread_file = True
            return
        self._record_file(self.data, data, (), str(path), lines)
        self.data = merge_config(self.data, data)

    def add_environment(self, env: Mapping[str, str]) -> None:
        """The ``FERRYMAN_*`` variables, in the order of their names."""
        for variable in sorted(env):
            if (
                variable.startswith(ENV_PREFIX)
                and variable not in NOT_CONFIGURATION
                and not variable.startswith(NOT_CONFIGURATION_PREFIXES)
            ):
                path = variable.removeprefix(ENV_PREFIX).lower().split(ENV_SEPARATOR)
                self.assign_text(path, env[variable], source=variable)

    def add_override(self, override: str) -> None:
        """One ``--set key=value``."""
        key, equals, text = override.partition("=")
        if not equals:
            self.problems.append(f"--set {override!r}: expected key=value")
            return
        self.assign_text(key.strip().split("."), text, source=f"--set {override}")

    def assign_text(self, path: Sequence[str], text: str, *, source: str) -> None:
        """Set the value ``text`` spells (:func:`parse_value`) at ``path``."""
        try:
            value = parse_value(text)
        except ConfigurationError as exc:
            self.problems.append(f"{source}: {exc}")
            return
        self.assign(path, value, source=source)

    def assign(self, path: Sequence[str], value: Any, *, source: str) -> None:
        """Set ``value`` at ``path`` (:func:`set_config_value`); ``source`` names where it came
        from in any problem with it. One that cannot apply changes nothing."""
        data = copy.deepcopy(self.data)
        try:
            set_config_value(data, path, value, source=source)
        except ConfigurationError as exc:
            self.problems.extend(exc.problems)
            return
        self.data = data
        self.sources.set(tuple(path), value, source)

    def length(self, path: Sequence[str]) -> int:
        """How many items the list at ``path`` has so far (0 when there is none)."""
        node: Any = self.data
        for key in path:
            if isinstance(node, dict):
                node = node.get(key)
            elif isinstance(node, list) and key.isdecimal() and int(key) < len(node):
                node = node[int(key)]
            else:
                return 0
        return len(node) if isinstance(node, list) else 0

    def resolve(self) -> ResolvedConfig:
        """Validate; raise :class:`ConfigurationError` with every problem, sources' first."""
        if self._unread_file:
            raise ConfigurationError(*self.problems)
        try:
            resolved = resolve_config(self.data, sources=self.sources)
        except ConfigurationError as exc:
            raise ConfigurationError(*self.problems, *exc.problems) from None
        if self.problems:
            raise ConfigurationError(*self.problems)
        return resolved

    def _record_file(
        self,
        base: Mapping[Any, Any],
        data: Mapping[Any, Any],
        prefix: KeyPath,
        file: str,
        lines: Mapping[KeyPath, int],
    ) -> None:
        """Note the file as the source of what it sets: a mapping merged into one already there
        is not the file's alone, so its keys are noted one by one (as merge_config merges)."""
        for key, value in data.items():
            path = (*prefix, str(key))
            current = base.get(key)
            if isinstance(current, Mapping) and isinstance(value, Mapping):
                self._record_file(current, value, path, file, lines)
            else:
                self.sources.set(path, value, file, lines)


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
    layers = ConfigLayers()
    for file in files:
        layers.add_file(file)
    layers.add_environment(os.environ if env is None else env)
    for override in overrides:
        layers.add_override(override)
    return layers.resolve().to_dict()


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML or TOML file holds (an empty file holds an empty one)."""
    return _read_file(Path(path))[0]


def _read_file(path: Path) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """The file's mapping, and the line of each key of a YAML file (TOML's parser tells none)."""
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
    lines: dict[KeyPath, int] = {}
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
            # As yaml.safe_load, keeping the nodes: they know the line of each key.
            loader = yaml.SafeLoader(text)
            try:
                node = loader.get_single_node()
                if node is not None:
                    _keys_as_names(node)
                data = None if node is None else loader.construct_document(node)
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else f"{path}"
            raise ConfigurationError(f"{where}: invalid YAML: {exc.problem}") from exc
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow
            line = text.count("\n", 0, exc.position) + 1
            column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
            reason = str(exc).splitlines()[0]  # (the next line names "<unicode string>")
            raise ConfigurationError(f"{path}:{line}:{column}: invalid YAML: {reason}") from exc
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: invalid YAML: {exc}") from exc
        if node is not None:
            _yaml_lines(node, (), lines)
    if data is None:
        return {}, lines
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{path}: the top level must be a mapping of settings, got a {type(data).__name__}"
        )
    return data, lines


_YAML_BOOL: Final = "tag:yaml.org,2002:bool"
_YAML_STR: Final = "tag:yaml.org,2002:str"


def _keys_as_names(root: Any) -> None:
    """Plain mapping keys that YAML 1.1 reads as booleans (``on``, ``off``, ``yes``, ``no``)
    stay text: every key of ferryman's is a name, and ``retry: {on: [timeout]}`` must not
    become ``{True: [...]}`` (refused as a key that is no string)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # (anchors and aliases share nodes, and may make cycles)
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag == _YAML_BOOL and not key.style:
                    key.tag = _YAML_STR
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _yaml_lines(node: Any, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    """The line of each key (and list item) under ``node``; keys that are not plain scalars
    (and merge keys' entries) are left out: their values are then blamed on the file alone."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                lines[(*path, key.value)] = key.start_mark.line + 1
                _yaml_lines(value, (*path, key.value), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, str(index))] = item.start_mark.line + 1
            _yaml_lines(item, (*path, str(index)), lines)


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


def resolve_config(config: Mapping[str, Any], *, sources: Sources | None = None) -> ResolvedConfig:
    """Import the applications ``config`` names and validate the settings of each.

    Without an ``applications`` key, :data:`DEFAULT_APPLICATIONS` run. ``sources`` says where
    each value came from, for the problems to name it. Every problem is reported at once: the
    settings of the applications that load are checked even when another one does not; only
    the keys of the configuration no application reads are left unjudged then (one of them
    may be the key of the one that did not load).
    """

    def blame(line: str, *path: str) -> str:
        source = None if sources is None else sources.describe(path)
        return line if source is None else f"{line} (from {source})"

    try:
        names = _APPLICATION_NAMES.validate_python(config.get("applications", DEFAULT_APPLICATIONS))
    except ValidationError as exc:
        raise ConfigurationError(*describe_errors(exc, "applications", sources=sources)) from None
    applications, failures = try_load_applications(names)
    problems = [
        blame(f"applications.{index}: {reason}", "applications", str(index))
        for index, reason in failures
    ]
    known = ["applications", *(application.name for application in applications)]
    if not failures:
        for key in sorted(str(key) for key in config if key not in known):
            reason = unknown_key(key, known, what="unknown configuration key")
            if "did you mean" not in reason:
                reason = (
                    "unknown configuration key (no application listed in 'applications' "
                    f"reads it; the keys read are {', '.join(sorted(known))})"
                )
            problems.append(blame(f"{key}: {reason}", key))
    settings: dict[str, Any] = {"applications": names}
    for application in applications:
        raw = config.get(application.name)
        if application.settings_type is None:
            if raw is not None:
                problems.append(
                    blame(
                        f"{application.name}: the application takes no settings "
                        f"(got {show_value(raw)})",
                        application.name,
                    )
                )
            continue
        try:
            settings[application.name] = application.settings_type.model_validate(
                {} if raw is None else raw
            )
        except ValidationError as exc:
            problems.extend(
                describe_errors(exc, application.name, application.settings_type, sources)
            )
    if not problems:

        def source(key: str) -> str | None:
            return None if sources is None else sources.describe(tuple(key.split(".")))

        for application in applications:
            problems.extend(application.check_settings(MappingProxyType(settings), source))
    if problems:
        raise ConfigurationError(*problems)
    return ResolvedConfig(tuple(applications), MappingProxyType(settings))


def dump_config(config: Mapping[str, Any]) -> str:
    """YAML for ``ferryman config``: loadable again, with secrets (``SecretStr``) masked."""
    data = to_jsonable_python(dict(config))
    dumped: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return dumped
