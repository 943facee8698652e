"""The live stream of finished transactions, kept in memory for the API's server-sent events.

Each subscriber has a bounded queue; :meth:`Broadcaster.publish` (called from the finished
listener, only while someone subscribes) appends the transaction itself, and a subscriber too
slow to keep up loses the oldest entries and is told how many it missed. The summary JSON is
built by the subscriber's own task when it sends, not on the request path.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from ferryman.proxy.transactions import Transaction

__all__ = ["Broadcaster", "Subscription"]

#: Transactions a subscriber may lag behind before it loses the oldest.
SUBSCRIBER_BACKLOG: Final = 1000


class Subscription:
    __slots__ = ("closed", "items", "missed", "wakeup")

    def __init__(self, backlog: int) -> None:
        self.items: deque[Transaction] = deque(maxlen=backlog)
        self.missed = 0
        self.wakeup = asyncio.Event()
        self.closed = False

    def put(self, transaction: Transaction) -> None:
        items = self.items
        if len(items) == items.maxlen:
            self.missed += 1
        items.append(transaction)
        self.wakeup.set()

    async def next(self, timeout: float) -> list[Transaction]:
        """What arrived since the last call; empty after ``timeout`` s without any."""
        if not self.items and not self.closed:
            self.wakeup.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self.wakeup.wait()
            except TimeoutError:
                return []
        taken = list(self.items)
        self.items.clear()
        return taken


class Broadcaster:
    def __init__(self, backlog: int = SUBSCRIBER_BACKLOG) -> None:
        self.backlog = backlog
        self.subscribers: list[Subscription] = []

    def subscribe(self) -> Subscription:
        subscription = Subscription(self.backlog)
        self.subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self.subscribers:
            self.subscribers.remove(subscription)

    def publish(self, transaction: Transaction) -> None:
        for subscriber in self.subscribers:
            subscriber.put(transaction)

    def close(self) -> None:
        """End every subscription (the process stops): their streams end."""
        for subscriber in self.subscribers:
            subscriber.closed = True
            subscriber.wakeup.set()
        self.subscribers = []
