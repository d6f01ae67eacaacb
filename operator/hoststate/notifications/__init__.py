"""Tenant notifications: HostStatusSubscriptions and the signed CloudEvents delivered to them."""

from .cloudevents import EVENT_TYPE, SIGNATURE_HEADER, build_event, encode, sign, verify
from .egress import EgressPolicy
from .notifier import Notifier

__all__ = ["EVENT_TYPE", "SIGNATURE_HEADER", "EgressPolicy", "Notifier", "build_event", "encode", "sign", "verify"]
