"""Query schemas of GET /servers and /servers/detail (nova/api/openstack/compute/schemas/servers.py:
query_params_v21, _v226, _v266, _v273, _v275). Before 2.75 unknown parameters are ignored; from
2.75 they are refused.
"""

from __future__ import annotations

import copy

from ..api_version import PerVersion
from . import parameter_types
from .parameter_types import common_query_param, common_query_regex_param, multi_params

# Filters on joined tables: accepted by the schema, then refused by the controller (400).
JOINED_TABLE_QUERY_PARAMS = (
    "block_device_mapping",
    "services",
    "metadata",
    "system_metadata",
    "info_cache",
    "security_groups",
    "pci_devices",
)

# Sort keys Nova accepted before it validated them; ignored (not refused) until 2.75.
IGNORED_SORT_KEYS = [
    "architecture",
    "cell_name",
    "cleaned",
    "default_ephemeral_device",
    "default_swap_device",
    "deleted",
    "deleted_at",
    "disable_terminate",
    "ephemeral_gb",
    "ephemeral_key_uuid",
    "id",
    "key_data",
    "launched_on",
    "locked",
    "memory_mb",
    "os_type",
    "reservation_id",
    "root_gb",
    "shutdown_terminate",
    "user_data",
    "vcpus",
    "vm_mode",
]
IGNORED_SORT_KEYS_V273 = [key for key in IGNORED_SORT_KEYS if key != "locked"]

SORT_KEYS = [
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "availability_zone",
    "config_drive",
    "created_at",
    "display_description",
    "display_name",
    "host",
    "hostname",
    "image_ref",
    "instance_type_id",
    "kernel_id",
    "key_name",
    "launch_index",
    "launched_at",
    "locked_by",
    "node",
    "power_state",
    "progress",
    "project_id",
    "ramdisk_id",
    "root_device_name",
    "task_state",
    "terminated_at",
    "updated_at",
    "user_id",
    "uuid",
    "vm_state",
]

TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")

_date_time = multi_params({"type": "string", "format": "date-time"})

query_params_v21 = {
    "type": "object",
    "properties": {
        **{
            key: common_query_param
            for key in (
                "user_id",
                "project_id",
                "tenant_id",
                "launch_index",
                "image_ref",
                "image",
                "vm_state",
                "task_state",
                "host",
                "uuid",
                "sort_dir",
                "all_tenants",
                "soft_deleted",
                "deleted",
                "status",
            )
        },
        **{
            key: common_query_regex_param
            for key in (
                "kernel_id",
                "ramdisk_id",
                "hostname",
                "key_name",
                "power_state",
                "node",
                "flavor",
                "reservation_id",
                "launched_at",
                "terminated_at",
                "availability_zone",
                "name",
                "display_name",
                "description",
                "display_description",
                "locked_by",
                "root_device_name",
                "config_drive",
                "access_ip_v4",
                "access_ip_v6",
                "auto_disk_config",
                "progress",
                "ip",
                "ip6",
                "created_at",
            )
        },
        "sort_key": multi_params({"type": "string", "enum": SORT_KEYS + IGNORED_SORT_KEYS}),
        "changes-since": _date_time,
        **{key: common_query_param for key in JOINED_TABLE_QUERY_PARAMS},
        "limit": multi_params(parameter_types.non_negative_integer),
        "marker": multi_params({"type": "string"}),
    },
    "additionalProperties": True,
    # Internal attributes (a leading underscore) are kept, to be refused by the controller.
    "patternProperties": {"^_": common_query_param},
}

query_params_v226 = copy.deepcopy(query_params_v21)
query_params_v226["properties"].update({key: common_query_regex_param for key in TAG_FILTERS})

query_params_v266 = copy.deepcopy(query_params_v226)
query_params_v266["properties"]["changes-before"] = _date_time

query_params_v273 = copy.deepcopy(query_params_v266)
query_params_v273["properties"]["sort_key"] = multi_params(
    {"type": "string", "enum": SORT_KEYS + ["locked"] + IGNORED_SORT_KEYS_V273}
)
query_params_v273["properties"]["locked"] = common_query_param

query_params_v275 = copy.deepcopy(query_params_v273)
query_params_v275["properties"]["sort_key"] = multi_params({"type": "string", "enum": SORT_KEYS + ["locked"]})
query_params_v275["additionalProperties"] = False


# The schema Nova validates the query with at a version (its @validation.query_schema ranges).
query_params = PerVersion(
    {
        "2.1": query_params_v21,
        "2.26": query_params_v226,
        "2.66": query_params_v266,
        "2.73": query_params_v273,
        "2.75": query_params_v275,
    }
)

ignored_sort_keys = PerVersion({"2.1": IGNORED_SORT_KEYS, "2.73": IGNORED_SORT_KEYS_V273, "2.75": []})
