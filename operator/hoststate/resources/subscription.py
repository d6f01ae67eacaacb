"""HostStatusSubscription: a tenant's webhook for the host status of its servers. Namespaced:
it sees only the Servers of its own namespace (the namespace is the tenant)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from ..domain.hoststatus import HOST_STATUSES
from .common import CONDITIONS_FIELD, Condition, HostStatusValue, KubeModel, cel

URL_MAX_LENGTH = 1024
# Scheme, then an authority without user info ('@': credentials do not belong in a spec that
# tenants, status and logs show), then an optional path, query or fragment; no spaces.
URL_PATTERN = r"^https?://[^/?#@:\s][^/?#@\s]*([/?#]\S*)?$"

# The URL policy, in CEL. Rules look at the string itself (bounded by maxLength): the cost
# estimator knows no bound for what Kubernetes' url() accessors return, so rules built on
# them exceed the CRD's cost budget. hoststate.notifications.url_policy applies the same policy
# again before each delivery (a CRD installed from an older version may be laxer).
LOCAL_HTTP_PATTERN = (
    r"^(?i)http://(localhost|127[.][0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}|\[::1\]"
    r"|[^/?#@:\[\]]+[.]svc|[^/?#@:\[\]]+[.]svc[.]cluster[.]local)(:[0-9]{1,5})?([/?#]|$)"
)
LINK_LOCAL_PATTERN = r"^(?i)https?://(169[.]254[.]|\[fe80:)"
URL_RULES = [
    cel("isURL(self)", "url must be an absolute URL with a host, for example https://hooks.example.com/hoststate"),
    cel(
        f"self.startsWith('https://') || self.matches(r'{LOCAL_HTTP_PATTERN}')",
        "url must use https; http is allowed only to loopback (localhost, 127.0.0.0/8, [::1]) "
        "or in-cluster hosts (*.svc, *.svc.cluster.local)",
    ),
    cel(
        r"!self.matches(r'^[a-z]+://[^/?#]*@')",
        "url must not carry user info (user:password@): put credentials in the signing key, not the URL",
    ),
    cel(
        f"!self.matches(r'{LINK_LOCAL_PATTERN}')",
        "url must not point at a link-local address (169.254.0.0/16, fe80::/10: cloud metadata services)",
    ),
]

# Kubernetes' label syntax (apimachinery validation: qualified names and label values).
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


class LabelSelectorRequirement(KubeModel):
    """One requirement of a label selector (the shape of metav1.LabelSelectorRequirement)."""

    model_config = KubeModel.model_config | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                    " : (!has(self.values) || size(self.values) == 0)",
                    "values must be non-empty with In and NotIn, and empty with Exists and DoesNotExist",
                    fieldPath=".values",
                )
            ]
        }
    )

    key: str = Field(
        min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN, description="The label key the requirement applies to."
    )
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[LabelValue] | None = Field(
        default=None,
        max_length=64,
        description="Label values for In and NotIn; must be empty for Exists and DoesNotExist.",
    )


class LabelSelector(KubeModel):
    """Which Servers of the namespace: Kubernetes label selector semantics (all requirements ANDed)."""

    match_labels: dict[str, LabelValue] | None = Field(
        default=None,
        max_length=64,
        description="Labels a Server must carry with exactly these values.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.all(k, size(k) <= 317 && k.matches(r'{LABEL_KEY_PATTERN}'))",
                    "matchLabels keys must be valid label keys ([prefix/]name)",
                )
            ],
        },
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=32, description="Requirements on labels, all of which must hold."
    )


class SecretKeyRef(KubeModel):
    """A key of a Secret in the subscription's own namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description="Name of the Secret, in the subscription's namespace.",
    )
    key: str = Field(
        default="key",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key in the Secret's data whose value is the HMAC-SHA256 signing key (at least 16 bytes).",
    )


class HostStatusSubscriptionSpec(KubeModel):
    """Where to send host status changes of this namespace's Servers, and which ones."""

    url: str = Field(
        min_length=1,
        max_length=URL_MAX_LENGTH,
        pattern=URL_PATTERN,
        description=(
            "Webhook the operator POSTs CloudEvents to. https, or http only to loopback (localhost, "
            "127.0.0.0/8, ::1) and in-cluster hosts (*.svc, *.svc.cluster.local); no user info; "
            "redirects are not followed."
        ),
        json_schema_extra={"x-kubernetes-validations": URL_RULES},
    )
    server_selector: LabelSelector | None = Field(
        default=None,
        description="Only Servers whose labels match; absent or empty: every Server of the namespace.",
    )
    host_statuses: list[HostStatusValue] = Field(
        default=list(HOST_STATUSES),
        min_length=1,
        max_length=5,
        description=(
            "Notify only when a Server's new hostStatus is one of these (UP, UNKNOWN, DOWN, MAINTENANCE, "
            'and "" for no host status); default: all of them.'
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    signing_key_secret_ref: SecretKeyRef = Field(
        description=(
            "The Secret key with the HMAC-SHA256 key that signs every event "
            "(header X-Hoststate-Signature: sha256=<hex of HMAC(key, body)>)."
        )
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        le=10,
        description=(
            "Retries of an event after a failed attempt (network error, timeout, 408, 429 or 5xx), "
            "with exponential backoff from 0.5 s up to 30 s; 0 to 10."
        ),
    )
    timeout_seconds: int = Field(default=5, ge=1, le=30, description="Timeout of one delivery attempt, 1 to 30 s.")
    delivery: Literal["PerServer", "PerHostTransition"] = Field(
        default="PerServer",
        description=(
            "PerServer: one request per Server event (application/cloudevents+json). PerHostTransition: one "
            "request per host transition carrying the events of all its matching Servers, in CloudEvents' batched "
            "mode (application/cloudevents-batch+json, a JSON array of the same events, at most 1000 a request)."
        ),
    )


ACKNOWLEDGED_MAX = 64


class AcknowledgedTransition(KubeModel):
    """A host transition whose events for this subscription are delivered or given up."""

    id: str = Field(max_length=36, description="The host transition's id (ComputeService status.recentTransitions).")
    time: datetime = Field(description="When it was decided.")


class HostStatusSubscriptionStatus(KubeModel):
    """Delivery state, as the operator last wrote it (updated on changes of health and periodically)."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the spec the operator delivers with."
    )
    last_success_time: datetime | None = Field(default=None, description="When an event was last delivered (2xx).")
    last_error_time: datetime | None = Field(default=None, description="When a delivery attempt last failed.")
    last_error: str | None = Field(default=None, max_length=1024, description="What the last failed attempt got.")
    consecutive_failures: int | None = Field(
        default=None, ge=0, description="Failed attempts since the last success (0 when healthy)."
    )
    delivered: int | None = Field(
        default=None, ge=0, description="Events delivered since the subscription was created."
    )
    failed: int | None = Field(
        default=None, ge=0, description="Events given up (retries exhausted, refused by the receiver, or queue full)."
    )
    dropped: int | None = Field(
        default=None, ge=0, description="Events dropped because the subscription's or the namespace's queue was full."
    )
    acknowledged_through: datetime | None = Field(
        default=None,
        description=(
            "Every host transition decided at or before this time was delivered (or given up) for this "
            "subscription; later ones are redelivered after an operator restart unless listed in acknowledged."
        ),
    )
    acknowledged: list[AcknowledgedTransition] | None = Field(
        default=None,
        max_length=ACKNOWLEDGED_MAX,
        description="Host transitions after acknowledgedThrough already delivered (or given up).",
    )
    conditions: list[Condition] | None = CONDITIONS_FIELD


class HostStatusSubscription(KubeModel):
    """A tenant's webhook: signed CloudEvents for hostStatus changes of this namespace's Servers."""

    spec: HostStatusSubscriptionSpec
    status: HostStatusSubscriptionStatus | None = None
