"""Request schemas of the evacuate server action (nova/api/openstack/compute/schemas/evacuate.py).

2.1-2.13: onSharedStorage required; 2.14: onSharedStorage gone; 2.29: `force`; 2.68: `force`
gone; 2.95: the same body as 2.68 (the server is then stopped on the target host).
"""

import copy

from ..api_version import PerVersion
from . import parameter_types

admin_password = {"type": "string"}  # nova parameter_types.admin_password

evacuate = {
    "type": "object",
    "properties": {
        "evacuate": {
            "type": "object",
            "properties": {
                "host": parameter_types.fqdn,  # Nova's parameter_types.hostname: the same rule
                "onSharedStorage": parameter_types.boolean,
                "adminPass": admin_password,
            },
            "required": ["onSharedStorage"],
            "additionalProperties": False,
        },
    },
    "required": ["evacuate"],
    "additionalProperties": False,
}

evacuate_v214 = copy.deepcopy(evacuate)
del evacuate_v214["properties"]["evacuate"]["properties"]["onSharedStorage"]
del evacuate_v214["properties"]["evacuate"]["required"]

evacuate_v2_29 = copy.deepcopy(evacuate_v214)
evacuate_v2_29["properties"]["evacuate"]["properties"]["force"] = parameter_types.boolean

evacuate_v2_68 = copy.deepcopy(evacuate_v2_29)
del evacuate_v2_68["properties"]["evacuate"]["properties"]["force"]

evacuate_v2_95 = copy.deepcopy(evacuate_v2_68)


# The schema Nova validates with at a version (its @validation.schema ranges).
for_version = PerVersion(
    {"2.1": evacuate, "2.14": evacuate_v214, "2.29": evacuate_v2_29, "2.68": evacuate_v2_68, "2.95": evacuate_v2_95}
)
