"""Request validation with jsonschema, with Nova's error wording (nova/api/validation/validators.py)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
from oslo_utils import timeutils

from .faults import HTTPBadRequest

# Nova's FormatChecker: jsonschema's (regex among them) and date-time as oslo's parse_isotime reads it.
FORMAT_CHECKER = copy.deepcopy(jsonschema.Draft4Validator.FORMAT_CHECKER)


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _date_time(instance: object) -> bool:
    if isinstance(instance, str):
        timeutils.parse_isotime(instance)
    return True


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    return jsonschema.Draft4Validator(schema, format_checker=FORMAT_CHECKER)


def validate_body(schema: dict[str, Any], body: Any) -> None:
    try:
        _validator(schema).validate(body)
    except jsonschema.ValidationError as error:
        if error.path:
            detail = f"Invalid input for field/attribute {error.path.pop()}. Value: {error.instance}. {error.message}"
        else:
            detail = error.message
        raise HTTPBadRequest(detail) from None


def validate_query(schema: dict[str, Any], query: dict[str, list[str]]) -> None:
    try:
        _validator(schema).validate(query)
    except jsonschema.ValidationError as error:
        if error.path:
            detail = (
                f"Invalid input for query parameters {error.path.popleft()}. Value: {error.instance}. {error.message}"
            )
        else:
            detail = error.message
        raise HTTPBadRequest(detail) from None
