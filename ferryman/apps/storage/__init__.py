"""Transaction storage: every request through the proxy, kept in SQLite or PostgreSQL.

The ``storage`` application (:mod:`.application`) records what the transaction events of
:mod:`ferryman.proxy.transactions` report, through a bounded queue and a batching writer
(:mod:`.recorder`), redacted (:mod:`.redaction`), with bodies stored once by hash
(:mod:`.schema`, migrated at start by :mod:`.migrate`); :mod:`.queries` answers the dashboard's
questions and :mod:`.api` serves them as JSON, HAR and server-sent events under ``/api``.
Settings: :mod:`.settings`.
"""

from ferryman.apps.storage.application import StorageApplication
from ferryman.apps.storage.recorder import Storage
from ferryman.apps.storage.settings import StorageSettings

__all__ = ["Storage", "StorageApplication", "StorageSettings", "application"]

#: What the ``applications`` list's ``storage`` loads.
application = StorageApplication
