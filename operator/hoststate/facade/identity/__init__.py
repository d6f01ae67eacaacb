"""Keystone's identity API v3 under /identity, as far as unmodified OpenStack clients need it: version
discovery, tokens whose catalog holds the compute endpoint, and the look-ups of projects, users and
domains they make for names and filters (docs/facade.md, "Identity").

Kubernetes stays the only authority, and nothing is stored: the credential is a Kubernetes bearer
token (keystoneauth's `v3token` plugin), the token issued is that same token (the compute API
reviews it on every call anyway), a project is a namespace the user may get servers in, roles are
the compute API's (auth.py). The token's project scope travels in the catalog's compute URL
(`/v2.1/<project>`), which the compute API accepts only for a project the user may access.
"""

from .wsgi import PREFIX, keystone_middleware, serves

__all__ = ["PREFIX", "keystone_middleware", "serves"]
