"""``python -m ferryman.proxy --port PORT --upstream URL``: one endpoint, nothing else to write.

The shape benchmark harnesses expect (``proxy_bench.sh --candidate 'python -m ferryman.proxy
--port {port} --upstream {upstream}'``); it is ``ferryman start --endpoint NAME=PORT:URL``, with
the same defaults as ``ferryman start`` and the same configuration options besides.
"""

from __future__ import annotations

from dataclasses import replace

import click

from ferryman.cli.errors import Command
from ferryman.cli.options import ConfigOptions, EndpointOption, config_options
from ferryman.cli.serve import LOOPS
from ferryman.cli.start import start_proxy


@click.command(cls=Command)
@click.option("--port", type=click.IntRange(0, 65535), required=True, help="The port to listen on.")
@click.option("--upstream", required=True, metavar="URL", help="Where to send the requests.")
@click.option("--name", default="bench", show_default=True, help="The endpoint's name.")
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Serve with N processes sharing the port.",
)
@click.option(
    "--loop", type=click.Choice(LOOPS), default="auto", show_default=True, help="The event loop."
)
@config_options
def proxy(
    options: ConfigOptions, port: int, upstream: str, name: str, workers: int, loop: str
) -> None:
    """Proxy PORT to the upstream URL until SIGINT or SIGTERM."""
    endpoint = EndpointOption(
        name,
        port,
        upstream,
        f"{name}={port}:{upstream}",
        given_as=f"--port {port} --upstream {upstream}",
    )
    start_proxy(
        replace(options, endpoints=(*options.endpoints, endpoint)), workers=workers, loop=loop
    )


if __name__ == "__main__":
    proxy(prog_name="python -m ferryman.proxy")
