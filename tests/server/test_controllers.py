"""Error answers and the ASGI app marker."""

from __future__ import annotations

import json

import pytest

from ferryman.http import Request
from ferryman.server import ASGIApp, error_response, not_found_controller
from ferryman.server.controllers import Receive, Scope, Send


@pytest.mark.parametrize("status", [400, 404, 418, 500, 503])
def test_error_responses_are_json_naming_only_the_status(status: int) -> None:
    response = error_response(status)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.content) == {"status": status, "message": response.reason_phrase}


async def test_the_not_found_controller() -> None:
    response = await not_found_controller(Request("GET", "http://h/missing"))
    assert (response.status_code, response.json()["message"]) == (404, "Not Found")


def test_asgi_app_wraps_the_app_it_names() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    mounted = ASGIApp(app)
    assert mounted.app is app
    assert repr(mounted).startswith("ASGIApp(<function")
