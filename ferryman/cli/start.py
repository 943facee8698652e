"""``ferryman start`` runs the proxy; ``ferryman config`` prints the configuration it would run.

``start`` serves in its own process by default. ``--workers N`` (N > 1) and ``--reload`` make it
a supervisor of child processes instead (:mod:`ferryman.cli.supervisor`), each child being
``ferryman start`` again with the same configuration options.

Exit codes: 0 after a graceful shutdown, 1 when serving fails (a port already in use), 2 for bad
usage or a bad configuration, 128 + N when a second signal N cut the shutdown short.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ferryman.cli.errors import fail
from ferryman.cli.logs import setup_logging_from
from ferryman.cli.options import ConfigOptions, config_options, effective_layers
from ferryman.cli.serve import LOOPS
from ferryman.exceptions import EventListenerError
from ferryman.system import ConfigurationError, dump_config
from ferryman.system.problems import Sources

__all__ = ["config", "load_checked", "start", "start_proxy"]


@click.command()
@config_options
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Serve with N processes sharing the ports (SO_REUSEPORT).",
)
@click.option(
    "--reload",
    is_flag=True,
    help="Restart when a .py file (ferryman's, the current directory's or the --app-dir's) or "
    "a config file changes; for development.",
)
@click.option(
    "--reuse-port",
    is_flag=True,
    help="Bind with SO_REUSEPORT, so that several ferryman processes can share the ports.",
)
@click.option(
    "--loop",
    type=click.Choice(LOOPS),
    default="auto",
    show_default=True,
    help="The event loop: uvloop when installed (auto), or the one named.",
)
@click.option("--supervised", is_flag=True, hidden=True)
@click.option("--ready-fd", type=int, hidden=True)
def start(
    options: ConfigOptions,
    workers: int,
    reload: bool,
    reuse_port: bool,
    loop: str,
    supervised: bool,
    ready_fd: int | None,
) -> None:
    """Run the reverse proxy until SIGINT or SIGTERM (in-flight requests then get
    proxy.grace_period seconds to finish; a second signal exits at once).

    \b
    ferryman start --endpoint api=4000:https://api.example.org
    ferryman start --config ferryman.yml --set proxy.grace_period=5 --workers 4
    """
    start_proxy(
        options,
        workers=workers,
        reload=reload,
        reuse_port=reuse_port,
        loop=loop,
        supervised=supervised,
        ready_fd=ready_fd,
    )


def start_proxy(
    options: ConfigOptions,
    *,
    workers: int = 1,
    reload: bool = False,
    reuse_port: bool = False,
    loop: str = "auto",
    supervised: bool = False,
    ready_fd: int | None = None,
) -> None:
    """What ``ferryman start`` does once its options are parsed; exits the process."""
    if workers > 1 and reload:
        raise click.UsageError("--reload restarts a single process: it cannot go with --workers")
    config, sources = load_checked(options)
    if "proxy" not in config:
        fail(
            "ferryman start serves the 'proxy' application, which 'applications' does not list "
            f"(it lists {', '.join(config['applications']) or 'nothing'})"
        )
    setup_logging_from(config)
    if workers > 1 or reload:
        from ferryman.cli.supervisor import Supervisor

        supervisor = Supervisor(
            options,
            config,
            workers=workers,
            reload=reload,
            reuse_port=reuse_port or workers > 1,
            loop=loop,
        )
        sys.exit(supervisor.run())
    from ferryman.cli.serve import run

    try:
        code = run(
            config,
            reuse_port=reuse_port,
            supervised=supervised,
            ready_fd=ready_fd,
            loop=loop,
            sources=sources,
        )
    except ConfigurationError as exc:  # a service the applications registered cannot be built
        fail(exc)
    except EventListenerError as exc:
        # An application refused its settings while starting (an access log file that cannot
        # be opened): its words, not a traceback.
        if isinstance(exc.__cause__, ConfigurationError):
            fail(exc.__cause__)
        raise
    except ImportError as exc:  # --loop uvloop without uvloop
        fail(f"--loop: {exc}")
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        code = 130
    sys.exit(code)


@click.command()
@config_options
def config(options: ConfigOptions) -> None:
    """Print the configuration `ferryman start` would run with the same options, as YAML."""
    click.echo(dump_config(load_checked(options)[0]), nl=False)


def load_checked(options: ConfigOptions) -> tuple[dict[str, Any], Sources]:
    """The validated configuration, and where each of its settings came from."""
    layers = effective_layers(options)
    try:
        return layers.resolve().to_dict(), layers.sources
    except ConfigurationError as exc:
        fail(exc)
