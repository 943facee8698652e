"""``ferryman start`` serves /metrics on the kernel's port by default, counting what it relayed."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.apps.accesslog.test_start import get_many, stopped
from tests.cli.proxy_process import ProxyProcess
from tests.servers.edge import EdgeServer


def test_a_scrape_counts_the_200_requests_sent(edge: EdgeServer) -> None:
    process = ProxyProcess(
        ["--endpoint", f"api=0:{edge.url}", "--set", "proxy.port=0", "--access-log", "off"]
    )
    try:
        pid = process.wait_serving().pids()[0]
        assert get_many(process.url("api"), ["/echo"] * 200, connections=4) == [200] * 200
        with urllib.request.urlopen(process.url("kernel") + "/metrics", timeout=10) as response:
            text = response.read().decode()
        stopped(process)
    finally:
        process.stop()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    requests = ("ferryman_requests_total", (("endpoint", "api"), ("status_class", "2xx")))
    assert samples[requests] == 200
    count = ("ferryman_request_duration_seconds_count", (("endpoint", "api"),))
    assert samples[count] == 200
    assert samples[("ferryman_info", (("pid", str(pid)), ("version", _version())))] == 1
    assert samples[("process_open_fds", ())] > 0  # prometheus_client's process collector


def _version() -> str:
    from ferryman._version import __version__

    return __version__
