from __future__ import annotations

import pytest

from ferryman.system import applications
from tests.system import example_apps


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test do not leak into the next one."""
    monkeypatch.setattr(applications, "_registry", dict(applications._registry))


@pytest.fixture(autouse=True)
def _fresh_event_log() -> None:
    example_apps.EVENTS.clear()
