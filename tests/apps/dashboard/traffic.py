"""Requests sent through a proxy under test, and waiting for the storage to hold them."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from tests.apps.dashboard.conftest import basic


def send(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> int:
    """One request (a new connection each time); the status, whatever it is."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return int(error.code)


def api(kernel: str, path: str, method: str = "GET", auth: bool = True) -> Any:
    request = urllib.request.Request(kernel + path, method=method, headers=basic() if auth else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_recorded(kernel: str, count: int, timeout: float = 15.0, auth: bool = True) -> list[Any]:
    """The stored transactions, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    items: list[Any] = []
    while time.monotonic() < deadline:
        items = api(kernel, "/api/transactions?limit=1000", auth=auth)["items"]
        if len(items) >= count:
            return list(items)
        time.sleep(0.1)
    raise AssertionError(f"{len(items)} transactions recorded, not {count}, after {timeout}s")
