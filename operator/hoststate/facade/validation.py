"""Request validation with jsonschema, with Nova's error wording (nova/api/validation/validators.py)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jsonschema
import re2
from oslo_utils import timeutils

from .faults import HTTPBadRequest

# A filter's pattern is searched in columns of at most 255 characters (Nova's display_name, hostname,
# key_name, availability_zone): 255 characters say anything useful about them (a few names in an
# alternation), and bound what one search costs, which grows with pattern length times value length.
MAX_PATTERN_LENGTH = 255
# RE2 is linear in the text; a pattern whose DFA would be large runs in a bounded state cache
# instead (slower, still linear). Per compiled pattern; at most PATTERN_CACHE_SIZE are kept.
PATTERN_MEMORY = 2 << 20
PATTERN_CACHE_SIZE = 64


def _pattern_options() -> re2.Options:
    options = re2.Options()
    options.never_capture = True  # filters only ask whether a value matches: the DFA alone answers that
    options.log_errors = False  # a tenant's bad pattern is a 400, not a line in the facade's log
    options.max_mem = PATTERN_MEMORY
    return options


PATTERN_OPTIONS = _pattern_options()


class PatternError(ValueError):
    """A pattern the filters' engine (RE2) refuses, with its reason."""


@functools.lru_cache(maxsize=PATTERN_CACHE_SIZE)
def compile_pattern(pattern: str) -> Any:
    """A filter's regular expression, compiled with RE2 (linear time: no backtracking, hence no
    backreferences or lookaround); compiled once for the schema check and the search that follows,
    and kept for the requests that repeat it."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, PATTERN_OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else "invalid"
        raise PatternError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from None
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for RE2
        raise PatternError("not valid Unicode") from None


# Nova's FormatChecker: jsonschema's, date-time as oslo's parse_isotime reads it, and regex as the
# engine that runs the filters reads it (Nova checks Python's re, then runs the database's REGEXP).
FORMAT_CHECKER = copy.deepcopy(jsonschema.Draft4Validator.FORMAT_CHECKER)


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _date_time(instance: object) -> bool:
    if isinstance(instance, str):
        timeutils.parse_isotime(instance)
    return True


@FORMAT_CHECKER.checks("regex", raises=PatternError)
def _regex(instance: object) -> bool:
    if isinstance(instance, str):
        compile_pattern(instance)
    return True


def validate_body(schema: dict[str, Any], body: Any) -> None:
    _validate(schema, body, lambda path: f"field/attribute {path[-1]}")  # the innermost field


def validate_query(schema: dict[str, Any], query: dict[str, list[str]]) -> None:
    _validate(schema, query, lambda path: f"query parameters {path[0]}")  # the parameter, not its n-th value


def _validate(schema: dict[str, Any], instance: Any, where: Callable[[Sequence[Any]], str]) -> None:
    try:
        jsonschema.Draft4Validator(schema, format_checker=FORMAT_CHECKER).validate(instance)
    except jsonschema.ValidationError as error:
        message = error.message
        if isinstance(error.cause, PatternError):  # say why RE2 refused it
            message = f"{message}: {error.cause}"
        if error.path:
            message = f"Invalid input for {where(error.path)}. Value: {error.instance}. {message}"
        raise HTTPBadRequest(message) from None
