"""HTTP caching without I/O (RFC 9111, with RFC 5861's stale-while-revalidate and
stale-if-error): the rules the client's cache layer and the proxy's cache share.

:class:`CachePolicy` decides (what to store, which stored response answers a request and how,
what a 304 changes, what an unsafe request invalidates); :class:`CacheEntry` is a stored
response with the facts those decisions need. Stores and the I/O around them live above, in
:mod:`ferryman.client.cache` and the proxy.

Why not hishel's sans-I/O core: its state machine builds request and response objects per
exchange and has no stale-while-revalidate or stale-if-error, while the relay decides on the
header bytes it already holds and answers hits from stored bytes.
"""

from ferryman.http.caching.directives import (
    Directives,
    delta_seconds,
    http_date,
    parse_cache_control,
)
from ferryman.http.caching.entry import CacheEntry, decode_entries, encode_entries
from ferryman.http.caching.policy import (
    CONDITIONAL_FIELDS,
    HEURISTIC_STATUSES,
    REVALIDATE,
    USE,
    USE_STALE,
    VALIDATE,
    CachePolicy,
    CacheRequest,
    Lookup,
    conditional_headers,
    related_locations,
)

__all__ = [
    "CONDITIONAL_FIELDS",
    "HEURISTIC_STATUSES",
    "REVALIDATE",
    "USE",
    "USE_STALE",
    "VALIDATE",
    "CacheEntry",
    "CachePolicy",
    "CacheRequest",
    "Directives",
    "Lookup",
    "conditional_headers",
    "decode_entries",
    "delta_seconds",
    "encode_entries",
    "http_date",
    "parse_cache_control",
    "related_locations",
]
