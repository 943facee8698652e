"""The configuration options ``ferryman start`` and ``ferryman config`` share, and what they make.

Both commands take the same options so that ``ferryman config ...`` prints exactly what
``ferryman start ...`` with the same arguments would run:

* ``--config FILE`` (repeatable): YAML or TOML files, merged in order;
* ``--endpoint name=port:url`` (repeatable): a shortcut appending ``{name, port, url}`` to
  ``proxy.endpoints``, after the endpoints the files and ``FERRYMAN_*`` variables define, and
  before ``--set`` applies, so ``--set proxy.endpoints.0.timeout=2`` can tune it;
* ``--set key=value`` (repeatable): dotted overrides, applied last but one;
* ``--host HOST``: where every socket listens (``proxy.host``), applied last;
* ``--app-dir DIR``: where the applications' modules are imported from first (the current
  directory by default), as ``uvicorn --app-dir``;
* ``--access-log FILE|off``, ``--log-format text|json``, ``--log-level LEVEL``: shortcuts for
  ``logging.access_log``, ``logging.format`` and ``logging.level`` (the ``accesslog``
  application's settings), applied after ``--set``.

A configuration error ends the command with exit code 2 (click's code for bad usage) and one
``error: key: reason`` line per problem (:func:`ferryman.cli.errors.fail`), never a traceback.
Each line names the source of the value (the file and line, the ``FERRYMAN_*`` variable, the
``--endpoint`` or ``--set``), and every problem is reported at once.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from ferryman.system import ConfigLayers
from ferryman.system.applications import use_app_dir

__all__ = [
    "ConfigOptions",
    "EndpointOption",
    "config_options",
    "effective_config",
    "effective_layers",
    "parse_endpoint",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class EndpointOption:
    """One ``--endpoint name=port:url``, kept with the text it came from for error messages."""

    name: str
    port: int
    url: str
    text: str
    #: How the user gave it, when not as ``--endpoint TEXT`` (``python -m ferryman.proxy``).
    given_as: str | None = None

    @property
    def source(self) -> str:
        """What a problem with this endpoint says it came from."""
        return self.given_as or f"--endpoint {self.text}"

    def to_settings(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port, "url": self.url}


@dataclass(frozen=True, slots=True)
class ConfigOptions:
    """The parsed configuration options; :meth:`argv` gives them back as command-line words."""

    files: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    endpoints: tuple[EndpointOption, ...] = ()
    host: str | None = None
    #: Where applications are imported from first; ``None``: the current directory.
    app_dir: str | None = None
    #: ``key=value`` overrides a supervisor adds after the user's (the ports it chose for 0).
    extra_sets: tuple[str, ...] = ()
    #: ``--access-log``, ``--log-format``, ``--log-level`` (``logging.*``), when given.
    access_log: str | None = None
    log_format: str | None = None
    log_level: str | None = None

    def argv(self) -> list[str]:
        """The options as ``ferryman start`` takes them, for the processes a supervisor runs."""
        words: list[str] = []
        for file in self.files:
            words += ["--config", file]
        for endpoint in self.endpoints:
            words += ["--endpoint", endpoint.text]
        for override in (*self.sets, *self.extra_sets):
            words += ["--set", override]
        if self.host is not None:
            words += ["--host", self.host]
        if self.app_dir is not None:
            words += ["--app-dir", os.path.abspath(self.app_dir)]
        for option, _key, value in self.logging_options():
            words += [option, value]
        return words

    def logging_options(self) -> list[tuple[str, str, str]]:
        """The logging shortcuts given, as ``(option, key under logging, value)``."""
        given = (
            ("--access-log", "access_log", self.access_log),
            ("--log-format", "format", self.log_format),
            ("--log-level", "level", self.log_level),
        )
        return [(option, key, value) for option, key, value in given if value is not None]


def parse_endpoint(text: str) -> EndpointOption:
    """``name=port:url`` split on the first ``=`` and then the first ``:`` (URLs have colons)."""
    name, equals, rest = text.partition("=")
    if not equals:
        raise click.BadParameter(f"{text!r} is not of the form name=port:url (no '=')")
    port_text, colon, url = rest.partition(":")
    name, port_text, url = name.strip(), port_text.strip(), url.strip()
    if not name:
        raise click.BadParameter(f"{text!r}: the endpoint has no name before '='")
    if not colon:
        raise click.BadParameter(f"{text!r} is not of the form name=port:url (no ':' after '=')")
    if not port_text.isdecimal() or int(port_text) > 65535:
        raise click.BadParameter(f"{text!r}: the port {port_text!r} is not a number in 0..65535")
    if not url:
        raise click.BadParameter(f"{text!r}: the upstream URL after 'port:' is missing")
    return EndpointOption(name, int(port_text), url, text)


def _parse_endpoints(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> tuple[EndpointOption, ...]:
    return tuple(parse_endpoint(value) for value in values)


def config_options(function: F) -> F:
    """Add ``--config``, ``--endpoint``, ``--set``, ``--host`` and ``--app-dir`` to a command.

    The command receives them as one ``options: ConfigOptions`` argument.
    """
    decorators = [
        click.option(
            "-c",
            "--config",
            "files",
            multiple=True,
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="A YAML or TOML configuration file (repeatable; later files win).",
        ),
        click.option(
            "-e",
            "--endpoint",
            "endpoints",
            multiple=True,
            metavar="NAME=PORT:URL",
            callback=_parse_endpoints,
            help="Proxy port PORT to the upstream URL (repeatable); adds to proxy.endpoints.",
        ),
        click.option(
            "-s",
            "--set",
            "sets",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override one setting by its dotted key, e.g. proxy.grace_period=5 (repeatable).",
        ),
        click.option(
            "--host",
            metavar="HOST",
            help="Listen on this address instead of proxy.host (default 127.0.0.1).",
        ),
        click.option(
            "--app-dir",
            metavar="DIR",
            type=click.Path(file_okay=False),
            help="Import the applications' modules from DIR first (default: the current "
            "directory).",
        ),
        click.option(
            "--access-log",
            metavar="FILE|off",
            help="Where the access log goes: stderr (the default, also '-'), a file appended "
            "to, or off (logging.access_log).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"], case_sensitive=False),
            help="text (default) or json: one object per line, for the access log and "
            "ferryman's other lines (logging.format).",
        ),
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
            help="The least severe of ferryman's own log lines shown; default info "
            "(logging.level).",
        ),
    ]
    wrapped: Callable[..., Any] = _collect_options(function)
    for decorator in reversed(decorators):
        wrapped = decorator(wrapped)
    return wrapped  # type: ignore[return-value]


def _collect_options(function: Callable[..., Any]) -> Callable[..., Any]:
    # wraps() also carries the options already attached below (click's ``__click_params__``).
    @functools.wraps(function)
    def command(
        files: tuple[str, ...],
        endpoints: tuple[EndpointOption, ...],
        sets: tuple[str, ...],
        host: str | None,
        app_dir: str | None,
        access_log: str | None,
        log_format: str | None,
        log_level: str | None,
        **kwargs: Any,
    ) -> Any:
        options = ConfigOptions(
            files=files,
            sets=sets,
            endpoints=endpoints,
            host=host,
            app_dir=app_dir,
            access_log=access_log,
            log_format=None if log_format is None else log_format.lower(),
            log_level=None if log_level is None else log_level.lower(),
        )
        return function(options=options, **kwargs)

    return command


def effective_config(
    options: ConfigOptions, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Files, ``FERRYMAN_*`` variables, ``--endpoint``, ``--set``, ``--host``: validated, with
    the applications imported from ``--app-dir`` (the current directory) first.

    Raises :class:`~ferryman.system.ConfigurationError` with every problem, each naming the
    source of the value: ``(from --endpoint api=4000:...)``, ``(from --set ...)``...
    """
    return effective_layers(options, env).resolve().to_dict()


def effective_layers(options: ConfigOptions, env: Mapping[str, str] | None = None) -> ConfigLayers:
    """The sources of :func:`effective_config`, laid in order but not validated yet: what
    ``ferryman start`` keeps to say where a setting came from once it serves."""
    use_app_dir(options.app_dir if options.app_dir is not None else os.curdir)
    layers = ConfigLayers()
    for file in options.files:
        layers.add_file(file)
    layers.add_environment(os.environ if env is None else env)
    # The shortcut's endpoints go after those the files and environment define.
    first_index = layers.length(["proxy", "endpoints"])
    for i, endpoint in enumerate(options.endpoints):
        layers.assign(
            ["proxy", "endpoints", str(first_index + i)],
            endpoint.to_settings(),
            source=endpoint.source,
        )
    for override in (*options.sets, *options.extra_sets):
        layers.add_override(override)
    for option, key, value in options.logging_options():
        layers.assign(["logging", key], value, source=f"{option} {value}")
    if options.host is not None:
        layers.assign(["proxy", "host"], options.host, source=f"--host {options.host}")
    return layers
