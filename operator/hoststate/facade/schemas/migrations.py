"""GET /os-migrations query schemas (nova/api/openstack/compute/schemas/migrations.py)."""

from __future__ import annotations

import copy

from .parameter_types import common_query_param, multi_params, non_negative_integer


def single_param(schema: dict) -> dict:
    """nova.api.validation.parameter_types.single_param: one value only."""
    return {**multi_params(schema), "maxItems": 1}


index_query_v20 = {
    "type": "object",
    "properties": {
        "hidden": common_query_param,
        "host": common_query_param,
        "instance_uuid": common_query_param,
        "source_compute": common_query_param,
        "status": common_query_param,
        "migration_type": common_query_param,
    },
    "additionalProperties": True,  # for backward compatible changes
}

index_query_v259 = copy.deepcopy(index_query_v20)
index_query_v259["properties"].update(
    {
        "limit": single_param(non_negative_integer),
        "marker": single_param({"type": "string"}),
        "changes-since": single_param({"type": "string", "format": "date-time"}),
    }
)
index_query_v259["additionalProperties"] = False

index_query_v266 = copy.deepcopy(index_query_v259)
index_query_v266["properties"]["changes-before"] = single_param({"type": "string", "format": "date-time"})

index_query_v280 = copy.deepcopy(index_query_v266)
index_query_v280["properties"].update(
    {"user_id": single_param({"type": "string"}), "project_id": single_param({"type": "string"})}
)


def index_query(version) -> dict:
    for minimum, schema in (("2.80", index_query_v280), ("2.66", index_query_v266), ("2.59", index_query_v259)):
        if version.at_least(minimum):
            return schema
    return index_query_v20
