"""What the applications' tests share: a served proxy with chosen settings, and a real client."""

from __future__ import annotations

from collections.abc import Sequence

from ferryman.proxy.application import build_kernel
from ferryman.proxy.server import ProxyServer
from ferryman.system import SystemBuilder, load_config
from tests.proxy.conftest import client, refused_url  # noqa: F401 (fixtures)


async def serve_with(
    endpoints: Sequence[tuple[str, str]], overrides: Sequence[str] = ()
) -> ProxyServer:
    """A started server (kernel port and each endpoint's on port 0) built from the default
    configuration plus ``overrides`` (``--set`` words)."""
    words = ["proxy.port=0"]
    for index, (name, url) in enumerate(endpoints):
        words += [
            f"proxy.endpoints.{index}.name={name}",
            f"proxy.endpoints.{index}.port=0",
            f"proxy.endpoints.{index}.url={url}",
        ]
    config = load_config([], env={}, overrides=[*words, *overrides])
    system = await SystemBuilder(config).build(build_kernel)
    server = ProxyServer(system, host="127.0.0.1")
    await server.start()
    return server


async def stop(server: ProxyServer) -> None:
    await server.shutdown(1)
    await server.system.dispose()


def url_of(server: ProxyServer, name: str, path: str) -> str:
    host, port = server.addresses[name]
    return f"http://{host}:{port}{path}"
