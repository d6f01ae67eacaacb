"""The request schema of POST /v3/auth/tokens (keystone/auth/schema.py), narrowed to what is served:
any method may be named (an unsupported one is Keystone's 401), the token method's id, and a scope."""

# Keystone's ids and names: at most 64 characters (a namespace name: 63).
name_or_id = {"type": "string", "minLength": 1, "maxLength": 64}
domain_ref = {
    "type": "object",
    "properties": {"id": name_or_id, "name": name_or_id},
    "anyOf": [{"required": ["id"]}, {"required": ["name"]}],
}
project_scope = {
    "type": "object",
    "properties": {"id": name_or_id, "name": name_or_id, "domain": domain_ref},
    "anyOf": [{"required": ["id"]}, {"required": ["name", "domain"]}],
}

issue = {
    "type": "object",
    "properties": {
        "auth": {
            "type": "object",
            "properties": {
                "identity": {
                    "type": "object",
                    "properties": {
                        "methods": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "token": {
                            "type": "object",
                            "properties": {"id": {"type": "string"}},
                            "required": ["id"],
                        },
                    },
                    "required": ["methods"],
                },
                "scope": {
                    "type": ["object", "string"],
                    "properties": {"project": project_scope, "domain": domain_ref, "system": {"type": "object"}},
                    "maxProperties": 1,
                },
            },
            "required": ["identity"],
        },
    },
    "required": ["auth"],
}
