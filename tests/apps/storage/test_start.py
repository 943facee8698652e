"""Done means: ``ferryman start --endpoint api=PORT:URL`` as a real process records by default;
after 200 requests the API lists 200 and the HAR export holds 200 entries."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import ferryman
from tests.cli.proxy_process import ProxyProcess
from tests.servers.edge import EdgeServer


def test_ferryman_start_records_every_request_by_default(edge: EdgeServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    process = ProxyProcess(
        ["--endpoint", f"api=0:{edge.url}", "--set", "proxy.port=0"],
        env={"FERRYMAN_DATA_DIR": str(data)},
    ).wait_serving()
    try:
        api = process.url("kernel") + "/api"
        with ferryman.Client(trust_env=False) as client:
            for index in range(200):
                assert client.get(process.url("api") + f"/echo?n={index}").status_code == 200
            deadline = time.monotonic() + 20
            while True:
                page = client.get(api + "/transactions", params={"limit": 500}).json()
                if len(page["items"]) == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert len(page["items"]) == 200
            assert {item["target"] for item in page["items"]} == {
                f"/echo?n={n}" for n in range(200)
            }
            har = client.get(api + "/transactions.har", params={"limit": 500}).json()
            assert har["log"]["version"] == "1.2"
            assert len(har["log"]["entries"]) == 200
    finally:
        process.signal(signal.SIGTERM)
        assert process.wait() == 0, process.output
    # The default database is the data directory's, the one the test pointed at.
    assert os.path.exists(data / "transactions.db")
