"""The parameter types of nova/api/validation/parameter_types.py that the facade's schemas use."""

boolean = {
    "type": ["boolean", "string"],
    "enum": [
        True,
        "True",
        "TRUE",
        "true",
        "1",
        "ON",
        "On",
        "on",
        "YES",
        "Yes",
        "yes",
        "y",
        "t",
        False,
        "False",
        "FALSE",
        "false",
        "0",
        "OFF",
        "Off",
        "off",
        "NO",
        "No",
        "no",
        "n",
        "f",
    ],
}

fqdn = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    # Nova allows '_' in host names although RFC 952 does not: real systems have them.
    "pattern": "^[a-zA-Z0-9-._]*$",
}

non_negative_integer = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0, "minLength": 1}


def multi_params(schema: dict) -> dict:
    """Query parameters arrive as lists of values."""
    return {"type": "array", "items": schema}


common_query_param = multi_params({"type": "string"})
common_query_regex_param = multi_params({"type": "string", "format": "regex"})
