"""Transaction storage: every request through the proxy, kept in SQLite or PostgreSQL.

The ``storage`` application (:mod:`.application`) records what the transaction events of
:mod:`ferryman.proxy.transactions` report: the proxy keeps a compact record of each in a
bounded queue and ships batches (:mod:`.recorder`, :mod:`.process`, :mod:`.channel`) to a
writer process of its own (:mod:`.writer`), which builds the rows (:mod:`.rows`), redacted
(:mod:`.redaction`), with bodies stored once by hash (:mod:`.schema`, migrated at start by
:mod:`.migrate`), and writes them (:mod:`.database`); :mod:`.queries` answers the dashboard's
questions and :mod:`.api` serves them as JSON, HAR and server-sent events under ``/api``.
Settings: :mod:`.settings`.
"""

from ferryman.apps.storage.application import StorageApplication
from ferryman.apps.storage.recorder import Storage
from ferryman.apps.storage.settings import StorageSettings

__all__ = ["Storage", "StorageApplication", "StorageSettings", "application"]

#: What the ``applications`` list's ``storage`` loads.
application = StorageApplication
