"""The one small Kubernetes client layer: an aiohttp session with the cluster's credentials."""

from .client import ApiError, KubeClient, login
from .resources import COMPUTE_SERVICES, EVENTS, LEASES, SERVERS, Resource

__all__ = ["COMPUTE_SERVICES", "EVENTS", "LEASES", "SERVERS", "ApiError", "KubeClient", "Resource", "login"]
