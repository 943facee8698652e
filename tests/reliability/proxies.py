"""``ferryman start`` processes configured for the reliability suite, as users run the proxy.

Two processes, each started once per test session (so the fd and RSS samples taken at start and
at the end cover everything the suite did to them):

* ``plain``: only configuration that exists before issue 20, so its defaults are what is tested
  (request line 8192 bytes, one header 8192, the head 64 KiB, 100 headers, ...). Each endpoint
  comes twice: ``NAME`` takes the fast relay, ``NAME-general`` the general road (the ASGI kernel
  and the http client: ``request_options`` sends an endpoint that way), since both roads must
  follow the same rules.
* ``tight``: issue 20's ``client_timeout``, ``limits`` and ``request_buffer`` set low, so a
  slowloris head or a trickled body is cut within seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.cli.proxy_process import ProxyProcess
from tests.reliability.ledger import LEDGER, sample_process

__all__ = [
    "GENERAL",
    "ROADS",
    "RunningProxy",
    "endpoint_name",
    "plain_config",
    "record_start",
    "running_proxy",
    "tight_config",
]

#: How an endpoint is made to take the general road (the client's own default: a no-op).
GENERAL: dict[str, Any] = {"request_options": {"allow_redirects": False}}
#: The two roads a request can take through the proxy.
ROADS = ("fast", "general")
#: Seconds the plain proxy waits for an upstream's answer (the "answers never come" vector).
PLAIN_READ_TIMEOUT = 1.0


def endpoint_name(name: str, road: str) -> str:
    """``api`` on the fast road, ``api-general`` on the general one."""
    return name if road == "fast" else f"{name}-general"


def _both_roads(name: str, url: str, **settings: Any) -> list[dict[str, Any]]:
    endpoint = {"name": name, "port": 0, "url": url, **settings}
    return [endpoint, {**endpoint, "name": f"{name}-general", **GENERAL}]


def plain_config(upstream: str, strict: str) -> dict[str, Any]:
    """``upstream``: the hostile one; ``strict``: the fuzz target's."""
    return {
        "proxy": {
            "port": 0,
            "grace_period": 1,
            "endpoints": [
                *_both_roads("api", upstream, timeout={"read": PLAIN_READ_TIMEOUT}),
                *_both_roads("base", f"{upstream}/v1"),
                *_both_roads(
                    "rules",
                    upstream,
                    request_headers={"remove": ["Via", "X-Forwarded-For"]},
                    response_headers={"remove": ["Via"]},
                ),
                *_both_roads("fuzz", strict, timeout={"read": 2}),
            ],
        }
    }


#: The tight proxy's client timeouts (seconds; the minimum body rate in bytes/s).
TIGHT_TIMEOUTS = {"head": 1, "body_idle": 1, "body_min_rate": 500, "keepalive": 1, "send": 2}
#: The tight proxy's request body limit.
TIGHT_BODY_LIMIT = 1024
#: The pool endpoint: its pool timeout, and the request body size it reads whole first.
POOL_TIMEOUT = 1.0
POOL_REQUEST_BUFFER = 1024


def tight_config(upstream: str) -> dict[str, Any]:
    slow_clients_allowed = {"body_idle": 30}
    return {
        "proxy": {
            "port": 0,
            "grace_period": 1,
            "client_timeout": TIGHT_TIMEOUTS,
            "limits": {"body": TIGHT_BODY_LIMIT},
            "endpoints": [
                *_both_roads("api", upstream),
                # Slow uploaders may stay: bodies over request_buffer hold upstream connections,
                # and the pool timeout answers whoever waits for one.
                {
                    "name": "pool",
                    "port": 0,
                    "url": upstream,
                    "request_buffer": POOL_REQUEST_BUFFER,
                    "limits": {"body": None},
                    "client_timeout": slow_clients_allowed,
                    "timeout": {"pool": POOL_TIMEOUT},
                },
                # The same with the default request_buffer: small slow uploads are read whole
                # before an upstream connection is taken.
                {
                    "name": "uploads",
                    "port": 0,
                    "url": upstream,
                    "client_timeout": slow_clients_allowed,
                    "timeout": {"pool": POOL_TIMEOUT},
                },
            ],
        }
    }


class RunningProxy:
    """One started ``ferryman start --config FILE``; its endpoints' ports by name."""

    def __init__(self, name: str, process: ProxyProcess) -> None:
        self.name = name
        self.process = process
        self.pid = process.pids()[0]

    def port(self, endpoint: str) -> int:
        return int(self.process.url(endpoint).rsplit(":", 1)[1])


@contextmanager
def running_proxy(name: str, config: dict[str, Any], directory: Path) -> Iterator[RunningProxy]:
    """Start the proxy (JSON is YAML) and stop it at the end, sampled just before."""
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2))
    process = ProxyProcess(["--config", str(path)])
    try:
        try:
            process.wait_serving()
        except AssertionError as exc:
            raise AssertionError(f"the {name} proxy did not start ({path}):\n{exc}") from None
        proxy = RunningProxy(name, process)
        yield proxy
        before, _ = LEDGER.processes.get(name, (None, None))
        LEDGER.processes[name] = (before, sample_process(proxy.pid))
    finally:
        process.stop()


def record_start(proxy: RunningProxy) -> None:
    """The "before" sample, taken once each endpoint has answered one request."""
    LEDGER.processes[proxy.name] = (sample_process(proxy.pid), None)
