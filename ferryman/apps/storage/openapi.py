"""The OpenAPI 3.1 document of the storage's JSON API (``GET /api/openapi.json``).

Written by hand, beside the routes it describes: the tests validate every answer of the API
against it, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from ferryman._version import __version__

__all__ = ["openapi_document"]


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _object(properties: dict[str, Any], *, extra: bool = False) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": extra,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_SUMMARY: Final = {
    "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "endpoint": {"type": "string"},
    "method": {"type": "string"},
    "target": {"type": "string"},
    "upstream": _nullable("string"),
    "status": {"type": "integer", "minimum": 0, "maximum": 999},
    "error": _nullable("string"),
    "started_at": {"type": "string", "format": "date-time"},
    "started": {"type": "number"},
    "duration_ms": _nullable("number"),
    "request_size": {"type": "integer", "minimum": 0},
    "response_size": {"type": "integer", "minimum": 0},
    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    "cache": _nullable("string"),
    "favourite": {"type": "boolean"},
    # 1 unless the request went again (retries; failed_attempts in the detail says why).
    "attempts": {"type": "integer", "minimum": 1},
}
_BODY: Final = {
    "oneOf": [
        {"type": "null"},
        _object(
            {
                "size": {"type": "integer", "minimum": 0},
                "truncated": {"type": "boolean"},
                "content_type": _nullable("string"),
                "encoding": {"enum": ["utf-8", "base64"]},
                "text": {"type": "string"},
            }
        ),
    ]
}
_HEADERS: Final = {
    "type": "array",
    "items": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    },
}
_MS: Final = _nullable("number", minimum=0)
_ROUTE: Final = {
    "requests": {"type": "integer", "minimum": 1},
    "errors": {"type": "integer", "minimum": 0},
    "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
    "p50_ms": _MS,
    "p90_ms": _MS,
    "p99_ms": _MS,
    "mean_ms": _MS,
}
_HAR_NAME_VALUE: Final = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "value"],
        "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
    },
}

SCHEMAS: Final[dict[str, Any]] = {
    "Error": _object({"status": {"type": "integer"}, "message": {"type": "string"}}),
    "Summary": _object(_SUMMARY),
    "Page": _object(
        {"items": {"type": "array", "items": _ref("Summary")}, "next": _nullable("string")}
    ),
    "Detail": _object(
        {
            **_SUMMARY,
            "reason": _nullable("string"),
            "http_version": _nullable("string"),
            "client": _nullable("string"),
            "reused": {"type": "boolean"},
            # The tries that failed before the last one, oldest first.
            "failed_attempts": {
                "type": "array",
                "items": _object({"upstream": {"type": "string"}, "failure": {"type": "string"}}),
            },
            "timings": _object(
                {
                    name: _nullable("number")
                    for name in ("blocked", "connect", "send", "wait", "receive", "total", "ttfb")
                }
            ),
            "request": _object({"headers": _HEADERS, "body": _BODY}),
            "response": {
                "oneOf": [{"type": "null"}, _object({"headers": _HEADERS, "body": _BODY})]
            },
        }
    ),
    "Favourite": _object({"id": {"type": "string"}, "favourite": {"type": "boolean"}}),
    "Replay": _object(
        {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "replay_of": {"type": "string"},
            "status": {"type": "integer"},
            "omitted_headers": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "Facets": _object(
        {
            "total": {"type": "integer"},
            "endpoint": {"type": "object", "additionalProperties": {"type": "integer"}},
            "method": {"type": "object", "additionalProperties": {"type": "integer"}},
            "status": {"type": "object", "additionalProperties": {"type": "integer"}},
            # HIT, MISS, STALE, REVALIDATED; "none": the cache did not look.
            "cache": {"type": "object", "additionalProperties": {"type": "integer"}},
            "tag": {
                "type": "array",
                "items": _object(
                    {
                        "name": {"type": "string"},
                        "value": {"type": "string"},
                        "count": {"type": "integer"},
                    }
                ),
            },
            "favourite": {"type": "integer"},
        }
    ),
    "Stats": _object(
        {
            "bucket": {"type": "number"},
            "truncated": {"type": "boolean"},
            "total": {"oneOf": [{"type": "null"}, _object(_ROUTE)]},
            "series": {
                "type": "array",
                "items": _object(
                    {"start": {"type": "number"}, "endpoint": {"type": "string"}, **_ROUTE}
                ),
            },
            "slowest": {"type": "array", "items": _ref("Route")},
            "failing": {"type": "array", "items": _ref("Route")},
            "cache": _object(
                {
                    "looked": {"type": "integer", "minimum": 0},
                    "statuses": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "hit_ratio": _nullable("number", minimum=0, maximum=1),
                }
            ),
            "rate_limited": {"type": "integer", "minimum": 0},
            "limited_by_proxy": {"type": "integer", "minimum": 0},
        }
    ),
    "Route": _object(
        {
            "endpoint": {"type": "string"},
            "method": {"type": "string"},
            "path": {"type": "string"},
            **_ROUTE,
        }
    ),
    "UpstreamState": _object(
        {
            "url": {"type": "string"},
            "origin": {"type": "string"},
            "role": {"enum": ["default", "fallback"]},
            "weight": {"type": "integer"},
            "healthy": {"type": "boolean"},
            "breaker": {"enum": ["closed", "open", "half_open", None]},
            "breaker_reopens_in": _nullable("number"),
            "in_flight": {"type": "integer"},
            "retries": {"type": "integer"},
            "transitions": {"type": "integer"},
        }
    ),
    "System": _object(
        {
            "version": {"type": "string"},
            "endpoints": {
                "type": "array",
                "items": _object(
                    {
                        "name": {"type": "string"},
                        "listen": {"type": "string"},
                        "upstreams": {"type": "array", "items": {"type": "string"}},
                        # Each upstream's role, weight, health and breaker (the fast relay's).
                        "upstream_states": {"type": "array", "items": _ref("UpstreamState")},
                        "record": {"enum": ["all", "headers", "none"]},
                    }
                ),
            },
            "settings": {"type": "object"},
            "storage": _object(
                {
                    "available": {"type": "boolean"},
                    "recorded": {"type": "integer"},
                    "dropped": {"type": "integer"},
                    "queue_depth": {"type": "integer"},
                    "size": _object(
                        {
                            "transactions": {"type": "integer"},
                            "bodies": {"type": "integer"},
                            "body_bytes": {"type": "integer"},
                            "database_bytes": _nullable("integer"),
                        }
                    ),
                }
            ),
        }
    ),
    # HAR 1.2's required fields and their types (the spec's own words: softwareishard.com).
    "HAR": {
        "type": "object",
        "required": ["log"],
        "properties": {
            "log": {
                "type": "object",
                "required": ["version", "creator", "entries"],
                "properties": {
                    "version": {"const": "1.2"},
                    "creator": {
                        "type": "object",
                        "required": ["name", "version"],
                        "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                    },
                    "entries": {"type": "array", "items": _ref("HAREntry")},
                },
            }
        },
    },
    "HAREntry": {
        "type": "object",
        "required": ["startedDateTime", "time", "request", "response", "cache", "timings"],
        "properties": {
            "startedDateTime": {"type": "string", "format": "date-time"},
            "time": {"type": "number", "minimum": 0},
            "request": {
                "type": "object",
                "required": [
                    "method",
                    "url",
                    "httpVersion",
                    "cookies",
                    "headers",
                    "queryString",
                    "headersSize",
                    "bodySize",
                ],
                "properties": {
                    "method": {"type": "string"},
                    "url": {"type": "string"},
                    "httpVersion": {"type": "string"},
                    "cookies": {"type": "array"},
                    "headers": _HAR_NAME_VALUE,
                    "queryString": _HAR_NAME_VALUE,
                    "postData": {
                        "type": "object",
                        "required": ["mimeType", "text"],
                        "properties": {"mimeType": {"type": "string"}, "text": {"type": "string"}},
                    },
                    "headersSize": {"type": "integer"},
                    "bodySize": {"type": "integer"},
                },
            },
            "response": {
                "type": "object",
                "required": [
                    "status",
                    "statusText",
                    "httpVersion",
                    "cookies",
                    "headers",
                    "content",
                    "redirectURL",
                    "headersSize",
                    "bodySize",
                ],
                "properties": {
                    "status": {"type": "integer"},
                    "statusText": {"type": "string"},
                    "httpVersion": {"type": "string"},
                    "cookies": {"type": "array"},
                    "headers": _HAR_NAME_VALUE,
                    "content": {
                        "type": "object",
                        "required": ["size", "mimeType"],
                        "properties": {
                            "size": {"type": "integer"},
                            "mimeType": {"type": "string"},
                            "text": {"type": "string"},
                            "encoding": {"type": "string"},
                        },
                    },
                    "redirectURL": {"type": "string"},
                    "headersSize": {"type": "integer"},
                    "bodySize": {"type": "integer"},
                },
            },
            "cache": {"type": "object"},
            "timings": {
                "type": "object",
                "required": ["send", "wait", "receive"],
                "properties": {
                    name: {"type": "number", "minimum": -1}
                    for name in ("blocked", "dns", "connect", "send", "wait", "receive", "ssl")
                },
            },
        },
    },
}

_FILTERS: Final = [
    ("endpoint", "Endpoint name (repeat for any of several)", {"type": "string"}),
    ("method", "HTTP method", {"type": "string"}),
    ("status", "2xx..5xx, an exact code, or 'error'", {"type": "string"}),
    ("tag", "name=value", {"type": "string"}),
    ("cache", "The cache's verdict (HIT, MISS, STALE, REVALIDATED) or 'none'", {"type": "string"}),
    ("favourite", "true or false", {"type": "boolean"}),
    ("since", "epoch seconds or ISO 8601", {"type": "string"}),
    ("until", "epoch seconds or ISO 8601 (exclusive)", {"type": "string"}),
    ("q", "text in the target, upstream URL or bodies", {"type": "string"}),
]


def _parameters(*extra: tuple[str, str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "query", "required": False, "description": text, "schema": schema}
        for name, text, schema in (*_FILTERS, *extra)
    ]


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_ERRORS: Final = {
    "400": _json("A parameter is wrong; the message names it", "Error"),
    "503": _json("The database cannot be read now", "Error"),
}
_ID: Final = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_LIMIT = ("limit", "page size (1..10000)", {"type": "integer", "minimum": 1, "maximum": 10000})
_CURSOR = ("cursor", "the 'next' of the previous page", {"type": "string"})


def _paths() -> dict[str, Any]:
    found = _json("No such transaction", "Error")
    return {
        "/transactions": {
            "get": {
                "summary": "Transactions, newest first",
                "parameters": _parameters(_LIMIT, _CURSOR),
                "responses": {"200": _json("A page", "Page"), **_ERRORS},
            }
        },
        "/transactions.har": {
            "get": {
                "summary": "The filtered transactions as a HAR 1.2 file (oldest first)",
                "parameters": _parameters(_LIMIT, _CURSOR),
                "responses": {"200": _json("HAR 1.2", "HAR"), **_ERRORS},
            }
        },
        "/transactions/stream": {
            "get": {
                "summary": "Server-sent events: 'transaction' (a Summary as data) per finished "
                "transaction, 'missed' (a count) when the subscriber fell behind",
                "responses": {
                    "200": {
                        "description": "An event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "503": _json("Too many subscribers", "Error"),
                },
            }
        },
        "/transactions/{id}": {
            "get": {
                "summary": "One transaction in full",
                "parameters": [_ID],
                "responses": {"200": _json("The transaction", "Detail"), "404": found},
            }
        },
        "/transactions/{id}/favourite": {
            "put": {
                "summary": "Mark as favourite (kept beyond the retention)",
                "parameters": [_ID],
                "responses": {"200": _json("Marked", "Favourite"), "404": found},
            },
            "delete": {
                "summary": "Unmark",
                "parameters": [_ID],
                "responses": {"200": _json("Unmarked", "Favourite"), "404": found},
            },
        },
        "/transactions/{id}/replay": {
            "post": {
                "summary": "Send the request again through its endpoint; redacted headers are "
                "left out (omitted_headers), a truncated or unrecorded body refuses (409)",
                "parameters": [_ID],
                "responses": {
                    "200": _json("The new transaction", "Replay"),
                    "404": found,
                    "409": _json("Cannot be replayed as it was", "Error"),
                    "502": _json("The replay failed", "Error"),
                },
            }
        },
        "/facets": {
            "get": {
                "summary": "Counts by endpoint, method, status class, tag, favourite",
                "parameters": _parameters(),
                "responses": {"200": _json("Facets", "Facets"), **_ERRORS},
            }
        },
        "/stats": {
            "get": {
                "summary": "Requests, errors and latency per bucket and endpoint (default: the "
                "last hour by minute); slowest and most failing routes",
                "parameters": _parameters(("bucket", "seconds per bucket", {"type": "integer"})),
                "responses": {"200": _json("Statistics", "Stats"), **_ERRORS},
            }
        },
        "/system": {
            "get": {
                "summary": "Endpoints, upstreams, effective settings (secrets masked), storage",
                "responses": {"200": _json("The system", "System"), **_ERRORS},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def openapi_document(prefix: str = "/api") -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ferryman transactions",
            "version": __version__,
            "description": "What ferryman recorded: list, search, export (HAR), follow, replay.",
        },
        "servers": [{"url": prefix}],
        "paths": _paths(),
        "components": {"schemas": copy.deepcopy(SCHEMAS)},
    }
