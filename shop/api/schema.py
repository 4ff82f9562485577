"""The error answers every API operation can give, written into the OpenAPI schema.

drf-spectacular documents the successes a view declares; the refusals DRF and the shop add on
their own (a malformed body, a missing or bad token, someone else's object, a body that is not
JSON) would otherwise be answers outside the schema, which a client generator or a contract test
(reliability/api_fuzz.py, schemathesis) rightly calls undocumented.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "description": "A refusal: `detail` says why in the customer's language; `code` names it.",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": "What is wrong with the request: a list of messages per field "
    "(`non_field_errors` for the whole body), or `detail`.",
    "additionalProperties": True,
}
REASONS = {
    "400": ("Malformed request: see the messages per field", "FieldErrors"),
    "401": ("No token, or a bad, expired or revoked one", "Error"),
    "403": ("This account may not do this", "Error"),
    "404": ("No such object (or not one of yours), or no such page", "Error"),
    "415": ("The body is not JSON (or a form)", "Error"),
    "503": ("The database is unavailable for a moment: retry after `Retry-After` s", "Error"),
}


def document_error_responses(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry: add the refusals each operation can give, where the view
    did not describe them itself."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR)
    schemas.setdefault("FieldErrors", FIELD_ERRORS)
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            security = operation.get("security", [])
            authenticates = any(requirement for requirement in security)
            anonymous_allowed = not security or {} in security
            codes = []
            if operation.get("requestBody") or operation.get("parameters"):
                codes.append("400")
            if authenticates:  # a bad token is refused even where no token is needed
                codes.append("401")
            if authenticates and not anonymous_allowed:
                codes.append("403")
            pages = any(p.get("name") == "page" for p in operation.get("parameters", []))
            if "{" in path or pages:  # an id that is not there; a page past the last
                codes.append("404")
            if operation.get("requestBody"):
                codes.append("415")
            codes.append("503")  # every operation reads the database
            for code in codes:
                description, schema = REASONS[code]
                operation["responses"].setdefault(
                    code,
                    {
                        "description": description,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{schema}"}
                            }
                        },
                    },
                )
    return result
