"""Faces of the APIs ferryman grew from, for code migrating to it with its imports changed.

Each module here is a thin, documented layer over ferryman's own API that keeps another
library's names and shapes (``ferryman.compat.pulsar``, ``ferryman.compat.httpcore``,
``ferryman.compat.aiorp``). They translate, they do not reimplement: the work is done by
ferryman's client, transport and proxy, and where a face cannot honour the original (an option
ferryman has no equivalent for) it says so when called rather than ignore it. New code should
use ferryman's own API; HARP's names live where ferryman keeps the same things
(``ferryman.system``, ``ferryman.events``).
"""
