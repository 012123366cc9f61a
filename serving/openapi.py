"""The OpenAPI description of the HTTP API (served at /openapi.json, checked by a test)."""

from __future__ import annotations

from typing import Any

from config import names
from streams import segment_spec

ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "bad request",
        401: "missing or wrong bearer token",
        403: "the token lacks the role the route needs (read, edit or ingest)",
        404: "not found",
        409: "If-Match names another version than the live one",
        413: "body too large",
        422: "the definition is not valid: one sentence naming the request, segment and field",
    }
    return {str(code): _json(ERROR, reasons[code]) for code in codes}


EVENT = {
    "type": "object",
    "required": ["topic", "value"],
    "properties": {
        "topic": {"type": "string", "enum": list(names.INPUT_TOPICS)},
        "key": {"type": "string", "description": "the customer_id (default: value.customer_id)"},
        "value": {"type": "object", "description": "an event of the contract (see README)"},
    },
}
RESULT = {
    "type": "object",
    "required": ["index", "accepted"],
    "properties": {
        "index": {"type": "integer"},
        "accepted": {"type": "boolean"},
        "reason": {"type": "string"},
    },
}
HEALTH = {
    "type": "object",
    "properties": {
        "status": {"enum": ["ok", "degraded"]},
        "reason": {"type": "string", "description": "why degraded"},
        "ready": {
            "type": "boolean",
            "description": "the worker holds its partitions and has recovered their tables",
        },
        "store_catch_up": {
            "type": "object",
            "properties": {n: {"type": "integer"} for n in ("checked", "of", "repaired")},
        },
        "redis": {"type": "boolean"},
        "segments": {"type": "integer"},
        "catalog_digest": {"type": "string"},
        "cart_quiet_minutes": {"type": "integer"},
    },
    "required": ["status", "ready", "redis", "segments", "catalog_digest"],
}
SEGMENT = {
    "type": "object",
    "required": ["name", "description", "consent_required", "size"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "consent_required": {"type": "boolean"},
        "cadence": {"type": ["string", "null"]},
        "trigger": {"type": ["string", "null"]},
        "frequency": {
            "type": ["object", "null"],
            "description": 'at most max emails per per: {"max": 1, "per": "60d"}',
        },
        "holdout": {"type": ["number", "null"], "description": "percent of members held out"},
        "size": {"type": "integer"},
    },
}


DEFINITION_BODY = {
    "type": "object",
    "description": "the segment as the YAML catalog writes it",
    "required": ["description", "when"],
    "properties": {
        "description": {"type": "string"},
        "when": {"type": "object", "description": "the rule (docs/segments.md)"},
        "consent_required": {"type": "boolean"},
        "cadence": {"type": "string"},
        "trigger": {"type": "string"},
        "frequency": {"type": "object", "description": '{"max": 1, "per": "14d"}'},
        "holdout": {"type": ["string", "number"], "description": '"10%" or 10'},
    },
}
DEFINITION = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "integer"},
        "changed_at": {"type": "integer", "description": "epoch ms"},
        "changed_by": {"type": "string", "description": "the name of the editor's token"},
        "definition": DEFINITION_BODY,
        "changed": {"type": "boolean", "description": "false: the body was the live one"},
    },
}
BACKTEST = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "state": {"enum": ["running", "done", "failed", "cancelled"]},
        "phase": {"type": "string"},
        "records_read": {"type": "integer"},
        "error": {"type": ["string", "null"]},
        "result": {
            "type": ["object", "null"],
            "description": "{events, draft: [{day, enters, exits, size}], live: [...] or null}",
        },
    },
}
DRAFT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "definition"],
    "properties": {
        "name": {"type": "string"},
        "definition": {
            **DEFINITION_BODY,
            "type": ["object", "string"],
            "description": "the segment as the catalog writes it, or that as YAML text",
        },
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "schema": {"type": "string"},
    "description": 'the version the editor saw ("3"; "0": no such segment yet)',
}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


TRACKING_ANSWER = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean"},
        "accepted": {"type": "integer"},
        "ignored": {"type": "integer"},
        "rejected": {"type": "integer"},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "outcome": {"enum": ["accepted", "ignored", "rejected"]},
                    "topic": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
TRACKING_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}


def _tracking(summary: str) -> dict[str, Any]:
    """A Tracking API route: Segment's and RudderStack's SDKs post to /v1/batch."""
    refused = {
        "400": _json(TRACKING_ERROR, "no message could be taken, or the request is malformed"),
        "401": _json(TRACKING_ERROR, "missing or unknown write key"),
        "429": _json(TRACKING_ERROR, "too much is on its way to Kafka: retry after Retry-After"),
        "503": _json(TRACKING_ERROR, "Kafka did not take the events: retry after Retry-After"),
    }
    return {
        "post": {
            "summary": summary,
            "security": [{"writeKey": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {"200": _json(TRACKING_ANSWER, "each message's outcome"), **refused},
        }
    }


SUBSCRIPTION = {
    "type": "object",
    "description": "a webhook subscription (never its secret), its backlog and delivery counts",
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "segments": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"const": "*"}]},
        "triggers": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"const": "*"}]},
        "state": {"enum": ["active", "paused"]},
        "reason": {"type": ["string", "null"], "description": "why it is paused"},
        "backlog": {"type": ["integer", "null"], "description": "records not yet delivered"},
        "deliveries": {"type": "object"},
    },
}
SUBSCRIPTION_ID = _path("subscription_id")


def _state_change(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [SUBSCRIPTION_ID],
            "responses": {
                "200": _json(SUBSCRIPTION, "the subscription"),
                **_errors(401, 403, 404),
                "503": _json(ERROR, "Kafka is out of reach; nothing changed"),
            },
        }
    }


PAGE = (
    {"name": "cursor", "in": "query", "schema": {"type": "integer"}},
    {"name": "count", "in": "query", "schema": {"type": "integer"}},
)
AUDIENCE_PATH = {
    "get": {
        "summary": "A page of the segment's members who may be mailed now: consented, not "
        "suppressed, outside its holdout, under its cadence and the weekly cap, outside their "
        "quiet hours, not sent `campaign` yet; and how many were held back, by reason",
        "parameters": [
            _path("name"),
            {"name": "campaign", "in": "query", "schema": {"type": "string"}},
            *PAGE,
        ],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "members": {"type": "array", "items": {"type": "string"}},
                        "checked": {"type": "integer"},
                        "held_back": {"type": "object"},
                        "next_cursor": {"type": "integer", "description": "0: the last page"},
                    },
                },
                "a page of the audience",
            ),
            **_errors(400, 401, 403, 404),
            "503": _json(ERROR, "the serving store is out of reach"),
        },
    }
}
MEMBERS_CSV_PATH = {
    "get": {
        "summary": "Every member as CSV (customer_id, email_consent, timezone, sent_last_7_days, "
        "last_sent_at), streamed; `audience` (a campaign, or empty) keeps only those who may be "
        "mailed now",
        "parameters": [
            _path("name"),
            {"name": "audience", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
            **_errors(401, 403, 404),
        },
    }
}
SUBSCRIPTION_PATHS: dict[str, Any] = {
    "/v1/subscriptions": {
        "get": {
            "summary": "Webhook subscriptions with their state, backlog and delivery counts",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"subscriptions": {"type": "array", "items": SUBSCRIPTION}},
                    },
                    "every subscription",
                ),
                **_errors(401, 403),
            },
        },
        "post": {
            "summary": "Subscribe a receiver URL to segment changes and triggers (edit role); "
            "deliveries are signed with the secret (docs/webhooks.md)",
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["url"],
                    "properties": {
                        "url": {"type": "string"},
                        "segments": {"description": 'a list of names, or "*" (default)'},
                        "triggers": {"description": 'a list of names (default: none), or "*"'},
                        "secret": {
                            "type": "string",
                            "description": "16+ characters; made if absent",
                        },
                    },
                }
            ),
            "responses": {
                "201": _json(SUBSCRIPTION, "created; the answer shows the secret, this once"),
                **_errors(400, 401, 403, 422),
                "503": _json(ERROR, "Kafka is out of reach; nothing changed"),
            },
        },
    },
    "/v1/subscriptions/{subscription_id}": {
        "get": {
            "summary": "One webhook subscription",
            "parameters": [SUBSCRIPTION_ID],
            "responses": {"200": _json(SUBSCRIPTION, "the subscription"), **_errors(401, 403, 404)},
        },
        "delete": {
            "summary": "Delete a webhook subscription (edit role)",
            "parameters": [SUBSCRIPTION_ID],
            "responses": {"200": _json({"type": "object"}, "deleted"), **_errors(401, 403, 404)},
        },
    },
    "/v1/subscriptions/{subscription_id}/pause": _state_change("Stop deliveries (edit role)"),
    "/v1/subscriptions/{subscription_id}/resume": _state_change(
        "Deliver again from where deliveries stopped (edit role)"
    ),
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "segstream", "version": "1"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                # Segment's and RudderStack's SDKs: the write key as the Basic user name.
                "writeKey": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/health": {
                "get": {
                    "summary": "Liveness, readiness and the serving store (no token needed)",
                    "security": [],
                    "responses": {"200": _json(HEALTH, "the worker is up")},
                }
            },
            "/v1/events": {
                "post": {
                    "summary": "Send one event or a JSON array of events",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [EVENT, {"type": "array", "items": EVENT}]}
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "accepted": {"type": "integer"},
                                    "rejected": {"type": "integer"},
                                    "results": {"type": "array", "items": RESULT},
                                },
                            },
                            "each event accepted (produced) or rejected with its reason",
                        ),
                        **_errors(400, 401, 413),
                    },
                }
            },
            "/v1/batch": _tracking(
                'Segment/RudderStack Tracking API: {"batch": [messages]}, as the SDKs send it'
            ),
            **{
                f"/v1/{call}": _tracking(f"Tracking API: one {call} message")
                for call in segment_spec.CALLS
            },
            "/v1/segment": {
                "post": {
                    "summary": "Tracking API messages with the bearer token (one message or "
                    '{"batch": [...]}); answered as /v1/batch',
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {
                        "200": _json(TRACKING_ANSWER, "each message's outcome"),
                        **_errors(400, 401),
                    },
                }
            },
            "/v1/segments": {
                "get": {
                    "summary": "Segment definitions with their live sizes",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "catalog_digest": {"type": "string"},
                                    "segments": {"type": "array", "items": SEGMENT},
                                },
                            },
                            "the catalog",
                        ),
                        **_errors(401),
                    },
                }
            },
            "/v1/segments/{name}": {
                "get": {
                    "summary": "One segment, its size and its size history",
                    "parameters": [_path("name")],
                    "responses": {
                        "200": _json(
                            SEGMENT,
                            "the segment, its size history [[epoch ms, size]], flow [[epoch ms, "
                            "size, enters, exits]], its rule in words, its live definition and "
                            "version (also the ETag)",
                        ),
                        **_errors(401, 403, 404),
                    },
                },
                "put": {
                    "summary": "Create or replace the segment (edit role); every worker applies "
                    "it within seconds and re-evaluates what changed",
                    "parameters": [_path("name"), IF_MATCH],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": DEFINITION_BODY}},
                    },
                    "responses": {
                        "200": _json(DEFINITION, "replaced (or unchanged)"),
                        "201": _json(DEFINITION, "created"),
                        **_errors(400, 401, 403, 409, 422),
                    },
                },
                "delete": {
                    "summary": "Delete the segment (edit role): its members exit",
                    "parameters": [_path("name"), IF_MATCH],
                    "responses": {
                        "200": _json({"type": "object"}, "deleted"),
                        **_errors(401, 403, 404, 409, 422),
                    },
                },
            },
            "/v1/segments/preview": {
                "post": {
                    "summary": "A draft segment on the live state of every worker: members, "
                    "a sample, how many would enter and leave the live segment of that name",
                    "requestBody": _body(DRAFT),
                    "responses": {
                        "200": _json({"type": "object"}, "the exact counts"),
                        **_errors(400, 401, 403, 422),
                        "503": _json(ERROR, "partitions are moving, or a worker did not answer"),
                    },
                }
            },
            "/v1/segments/backtest": {
                "post": {
                    "summary": "Start a backtest (edit role): the draft segment over the retained "
                    "input topics since `since` (default 30d), beside the live definition of "
                    "that name, per day; answered at once with the backtest's id",
                    "requestBody": _body(
                        {
                            **DRAFT,
                            "properties": {
                                **DRAFT["properties"],
                                "since": {"type": "string", "description": "30d, 12h"},
                            },
                        }
                    ),
                    "responses": {
                        "202": _json(BACKTEST, "started (Location: the backtest)"),
                        **_errors(400, 401, 403, 422),
                        "429": _json(ERROR, "a backtest runs on this worker already"),
                    },
                }
            },
            "/v1/segments/backtest/{backtest_id}": {
                "get": {
                    "summary": "A backtest's state, progress and, once done, its result",
                    "parameters": [_path("backtest_id")],
                    "responses": {"200": _json(BACKTEST, "the backtest"), **_errors(401, 403, 404)},
                },
                "delete": {
                    "summary": "Cancel a running backtest (edit role)",
                    "parameters": [_path("backtest_id")],
                    "responses": {"200": _json(BACKTEST, "the backtest"), **_errors(401, 403, 404)},
                },
            },
            "/v1/segments/{name}/history": {
                "get": {
                    "summary": "The segment's live version and the earlier ones kept, newest first",
                    "parameters": [_path("name")],
                    "responses": {
                        "200": _json({"type": "object"}, "{name, versions: [...]}"),
                        **_errors(401, 403, 404),
                    },
                }
            },
            "/v1/segments/{name}/rollback": {
                "post": {
                    "summary": "A new version with the body of an earlier one (edit role)",
                    "parameters": [_path("name"), IF_MATCH],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"version": {"type": "integer"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(DEFINITION, "the new version"),
                        **_errors(400, 401, 403, 404, 409, 422),
                    },
                }
            },
            **SUBSCRIPTION_PATHS,
            "/v1/segments/{name}/audience": AUDIENCE_PATH,
            "/v1/segments/{name}/members.csv": MEMBERS_CSV_PATH,
            "/v1/reports/campaigns": {
                "get": {
                    "summary": "Per campaign and segment: sends, opens, clicks, conversions, "
                    "attributed revenue, conversion rate; per segment with a holdout: purchases "
                    "per member mailed and held out, the lift and its 95% interval",
                    "responses": {
                        "200": _json({"type": "object"}, "the campaign report"),
                        **_errors(401, 403),
                        "503": _json(ERROR, "the serving store is out of reach"),
                    },
                }
            },
            "/v1/definitions": {
                "get": {
                    "summary": "The definitions this worker and every worker runs (agree?), and "
                    "the re-evaluation's progress: done, total, per second, ETA",
                    "responses": {
                        "200": _json({"type": "object"}, "the rollout"),
                        **_errors(401, 403),
                    },
                }
            },
            "/v1/segments/{name}/members": {
                "get": {
                    "summary": "A page of the segment's members (from Redis)",
                    "parameters": [
                        _path("name"),
                        *PAGE,
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "segment": {"type": "string"},
                                    "members": {"type": "array", "items": {"type": "string"}},
                                    "next_cursor": {"type": "integer"},
                                },
                            },
                            "a page; next_cursor 0 means the last one",
                        ),
                        **_errors(400, 401, 404),
                    },
                }
            },
            "/v1/customers/{customer_id}": {
                "get": {
                    "summary": "A customer's state summary and segments",
                    "parameters": [_path("customer_id")],
                    "responses": {
                        "200": _json({"type": "object"}, "the customer"),
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/customers/{customer_id}/explain": {
                "get": {
                    "summary": "Why the customer is or is not in a segment: its rule, node by "
                    "node, with the customer's value, whether it holds and when time alone "
                    "changes it (without segment: each segment the customer is in)",
                    "parameters": [
                        _path("customer_id"),
                        {"name": "segment", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "the explanations"),
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/dashboard": {
                "get": {
                    "summary": "What the dashboard shows: sizes, enters and exits in the last "
                    "minute, revenue of current members, the latest changes",
                    "responses": {"200": _json({"type": "object"}, "the figures"), **_errors(401)},
                }
            },
            "/dashboard": {
                "get": {
                    "summary": "The dashboard page (the token may also come as ?token=)",
                    "parameters": [{"name": "token", "in": "query", "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "HTML", "content": {"text/html": {}}},
                        **_errors(401),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this worker",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(401),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"), **_errors(401)},
                }
            },
        },
    }
