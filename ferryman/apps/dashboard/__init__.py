"""The dashboard: the recorded traffic in a browser, at http://127.0.0.1:4080/ by default.

Pages (overview, transactions, detail, system) are static files in ``static/`` that read the
storage's JSON API (``/api``); :mod:`.application` serves them and guards ``/api`` and
``/metrics`` with the same basic auth. ``ferryman tail`` (:mod:`ferryman.cli.tail`) is the
same live stream in a terminal.
"""

from ferryman.apps.dashboard.application import DashboardApplication
from ferryman.apps.dashboard.settings import AuthSettings, DashboardSettings

__all__ = ["AuthSettings", "DashboardApplication", "DashboardSettings", "application"]

application = DashboardApplication
