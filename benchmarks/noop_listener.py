"""An application with one no-op ``proxy.transaction.finished`` listener: the cost of the
transaction events themselves, for ``benchmarks/observe_bench.py`` (issue 22: at most 10%).

    ferryman start --app-dir benchmarks --set 'applications=[proxy, "noop_listener:NoopListener"]'
"""

from __future__ import annotations

from ferryman.events import EventDispatcher
from ferryman.proxy.transactions import EVENT_TRANSACTION_FINISHED, Transaction
from ferryman.system import Application, OnBoundEvent


def _nothing(transaction: Transaction) -> None:
    return None


class NoopListener(Application):
    name = "noop_listener"

    def on_bound(self, event: OnBoundEvent) -> None:
        event.provider.resolve(EventDispatcher).add_listener(EVENT_TRANSACTION_FINISHED, _nothing)
