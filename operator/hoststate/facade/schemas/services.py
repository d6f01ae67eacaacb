"""Request schemas of os-services (nova/api/openstack/compute/schemas/services.py)."""

from . import parameter_types

service_update = {
    "type": "object",
    "properties": {
        "host": parameter_types.fqdn,
        "binary": {"type": "string", "minLength": 1, "maxLength": 255},
        "disabled_reason": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "required": ["host", "binary"],
    "additionalProperties": False,
}

service_update_v211 = {
    "type": "object",
    "properties": {
        "host": parameter_types.fqdn,
        "binary": {"type": "string", "minLength": 1, "maxLength": 255},
        "disabled_reason": {"type": "string", "minLength": 1, "maxLength": 255},
        "forced_down": parameter_types.boolean,
    },
    "required": ["host", "binary"],
    "additionalProperties": False,
}

# 2.53: the service is named by the uuid in the path; nothing is required, and asking for
# status 'enabled' with a disabled_reason is refused in code, as Nova does.
service_update_v2_53 = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["enabled", "disabled"]},
        "disabled_reason": {"type": "string", "minLength": 1, "maxLength": 255},
        "forced_down": parameter_types.boolean,
    },
    "additionalProperties": False,
}

index_query_schema = {
    "type": "object",
    "properties": {
        "host": parameter_types.common_query_param,
        "binary": parameter_types.common_query_param,
    },
    # Unknown parameters are ignored before 2.75 and refused from it.
    "additionalProperties": True,
}

index_query_schema_v275 = {**index_query_schema, "additionalProperties": False}
