"""An application a user would name in ``applications:``, to run ``ferryman start`` with events on.

Its listeners make the events visible on the wire: the upstream sees ``X-Filtered`` (added on
``proxy.filter.request``) and the client gets ``X-Seen-By`` (added on ``core.response``).
"""

from __future__ import annotations

from ferryman.events import EventDispatcher
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST, ProxyFilterEvent
from ferryman.server import EVENT_CORE_RESPONSE, ResponseEvent
from ferryman.system import Application, OnBoundEvent, Settings


class RecorderSettings(Settings):
    tag: str = "recorder"


class RecorderApplication(Application):
    name = "recorder"
    settings_type = RecorderSettings
    settings: RecorderSettings

    def on_bound(self, event: OnBoundEvent) -> None:
        dispatcher = event.provider.resolve(EventDispatcher)
        tag = self.settings.tag

        def filter_request(event: ProxyFilterEvent) -> None:
            event.request.headers["X-Filtered"] = tag

        def on_response(event: ResponseEvent) -> None:
            event.response.headers["X-Seen-By"] = tag

        dispatcher.add_listener(EVENT_FILTER_PROXY_REQUEST, filter_request)
        dispatcher.add_listener(EVENT_CORE_RESPONSE, on_response)


application = RecorderApplication
