"""Query schema of GET /servers and /servers/detail: the parameters the facade acts on, typed as
in nova/api/openstack/compute/schemas/servers.py (query_params_v21). Others are ignored, as
Nova ignores unknown parameters before 2.75.
"""

from . import parameter_types

query_params = {
    "type": "object",
    "properties": {
        "name": parameter_types.common_query_param,
        "status": parameter_types.common_query_param,
        "host": parameter_types.common_query_param,
        "all_tenants": parameter_types.common_query_param,
        "project_id": parameter_types.common_query_param,
        "tenant_id": parameter_types.common_query_param,
        "limit": parameter_types.multi_params(parameter_types.non_negative_integer),
        "marker": parameter_types.common_query_param,
    },
    "additionalProperties": True,
}
