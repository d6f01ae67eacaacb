"""hoststate: compute-host state for Kubernetes, the way Nova's force-down and host_status work."""

API_GROUP = "hoststate.io"
API_VERSION = "v1alpha1"
API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"  # apiVersion of the custom resources
