"""The Nova-compatible HTTP facade: Nova's compute API for host state, served from a watch cache."""

from .app import FacadeConfig, create_app, run

__all__ = ["FacadeConfig", "create_app", "run"]
