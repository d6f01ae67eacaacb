"""The one small Kubernetes client layer: an aiohttp session with the cluster's credentials."""

from .api_resources import COMPUTE_SERVICES, EVENTS, HOST_STATUS_SUBSCRIPTIONS, LEASES, SECRETS, SERVERS, Resource
from .client import ApiError, KubeClient, login

__all__ = [
    "COMPUTE_SERVICES",
    "EVENTS",
    "HOST_STATUS_SUBSCRIPTIONS",
    "LEASES",
    "SECRETS",
    "SERVERS",
    "ApiError",
    "KubeClient",
    "Resource",
    "login",
]
