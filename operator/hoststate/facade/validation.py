"""Request validation with jsonschema, with Nova's error wording (nova/api/validation/validators.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
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


def validate_body(schema: dict[str, Any], body: Any) -> None:
    _validate(schema, body, lambda path: f"field/attribute {path[-1]}")  # the innermost field


def validate_query(schema: dict[str, Any], query: dict[str, list[str]]) -> None:
    _validate(schema, query, lambda path: f"query parameters {path[0]}")  # the parameter, not its n-th value


def _validate(schema: dict[str, Any], instance: Any, where: Callable[[Sequence[Any]], str]) -> None:
    try:
        jsonschema.Draft4Validator(schema, format_checker=FORMAT_CHECKER).validate(instance)
    except jsonschema.ValidationError as error:
        if error.path:
            detail = f"Invalid input for {where(error.path)}. Value: {error.instance}. {error.message}"
        else:
            detail = error.message
        raise HTTPBadRequest(detail) from None
