"""Request schemas of os-services (nova/api/openstack/compute/schemas/services.py)."""

import copy

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

# 2.11: force-down, with forced_down in the body.
service_update_v211 = copy.deepcopy(service_update)
service_update_v211["properties"]["forced_down"] = parameter_types.boolean

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
