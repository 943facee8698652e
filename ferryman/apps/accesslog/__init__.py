"""The ``accesslog`` application: one line per request, on stderr by default.

In the default ``applications``; its settings are the ``logging`` key
(:mod:`ferryman.apps.accesslog.settings`). With ``access_log: off`` it registers nothing at all,
so no transaction is even created for it; otherwise it listens to
``proxy.transaction.finished``, formats the line there (:mod:`~ferryman.apps.accesslog.formats`)
and hands it to a :class:`~ferryman.apps.accesslog.writer.BatchWriter`, which writes batches
from a thread of its own. The :class:`AccessLog` service says how many lines were written and
dropped (the metrics application reads it).
"""

from __future__ import annotations

from typing import ClassVar

from ferryman.apps.accesslog.formats import LineFormatter, query_redactor
from ferryman.apps.accesslog.settings import LoggingSettings
from ferryman.apps.accesslog.writer import BatchWriter
from ferryman.events import EventDispatcher
from ferryman.proxy.transactions import EVENT_TRANSACTION_FINISHED, Transaction
from ferryman.system import (
    Application,
    ConfigurationError,
    OnBindEvent,
    OnBoundEvent,
    OnShutdownEvent,
)

__all__ = ["AccessLog", "AccessLogApplication", "LoggingSettings", "application"]


class AccessLog:
    """The access log of one process: a formatter and a writer, and the listener joining them."""

    __slots__ = ("format_line", "writer")

    def __init__(self, settings: LoggingSettings) -> None:
        self.format_line = LineFormatter(settings.format, query_redactor(settings.redact_query))
        self.writer = BatchWriter(
            None if settings.access_log_to_stderr else settings.access_log,
            flush_interval=settings.flush_interval,
            buffer_size=settings.buffer_size,
            max_pending=settings.max_pending,
        )

    def on_finished(self, transaction: Transaction) -> None:
        """The ``proxy.transaction.finished`` listener: one line."""
        self.writer.write(self.format_line(transaction))

    @property
    def written(self) -> int:
        return self.writer.written

    @property
    def dropped(self) -> int:
        return self.writer.dropped


class AccessLogApplication(Application):
    """Writes the access log; see the module documentation."""

    name: ClassVar[str] = "logging"
    settings_type = LoggingSettings
    settings: LoggingSettings

    def on_bind(self, event: OnBindEvent) -> None:
        if not self.settings.access_log_off:
            event.container.add(AccessLog, AccessLog(self.settings))

    def on_bound(self, event: OnBoundEvent) -> None:
        if AccessLog not in event.provider:
            return
        access_log = event.provider.resolve(AccessLog)
        try:
            access_log.writer.open()
        except OSError as exc:
            raise ConfigurationError(
                f"logging.access_log: cannot open {self.settings.access_log!r} for appending: "
                f"{(exc.strerror or str(exc)).lower()}"
            ) from None
        dispatcher = event.provider.resolve(EventDispatcher)
        dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, access_log.on_finished)

    def on_shutdown(self, event: OnShutdownEvent) -> None:
        if AccessLog in event.provider:
            event.provider.resolve(AccessLog).writer.close()


application = AccessLogApplication
