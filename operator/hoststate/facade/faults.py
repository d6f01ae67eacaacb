"""Nova-shaped errors: `{"<faultName>": {"code": N, "message": "..."}}` (nova/api/openstack/wsgi.py, Fault)."""

from __future__ import annotations

from typing import Any

# Fault._fault_names; anything else is a computeFault.
FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}


class NovaError(Exception):
    """An error answer; `message` is Nova's explanation."""

    code = 500
    default_message = "The server has either erred or is incapable of performing the requested operation."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {FAULT_NAMES.get(self.code, "computeFault"): {"code": self.code, "message": self.message}}


# Default messages are webob's explanations, which Nova returns when it gives none.
class HTTPBadRequest(NovaError):
    code = 400
    default_message = (
        "The server could not comply with the request since it is either malformed or otherwise incorrect."
    )


class HTTPUnauthorized(NovaError):
    code = 401
    default_message = "The request you have made requires authentication."


class HTTPForbidden(NovaError):
    code = 403
    default_message = "Access was denied to this resource."


class HTTPNotFound(NovaError):
    code = 404
    default_message = "The resource could not be found."


class HTTPMethodNotAllowed(NovaError):
    code = 405
    default_message = "The method is not allowed for this resource."


class HTTPNotAcceptable(NovaError):
    code = 406
    default_message = "The resource could not be generated that was acceptable to your browser."


class HTTPConflict(NovaError):
    code = 409
    default_message = "There was a conflict when trying to complete your request."


class HTTPRequestEntityTooLarge(NovaError):
    code = 413
    default_message = "Request is too large."  # oslo.middleware's sizelimit, in front of Nova


class HTTPUnsupportedMediaType(NovaError):
    code = 415
    default_message = "The request media type is not supported by this server."


class HTTPInternalServerError(NovaError):
    code = 500


def policy_not_authorized(action: str) -> HTTPForbidden:
    # nova.exception.PolicyNotAuthorized
    return HTTPForbidden(f"Policy doesn't allow {action} to be performed.")


# The identity API's errors carry Keystone's body instead (keystone/exception.py, Error):
# {"error": {"code": N, "message": "...", "title": "<HTTP reason>"}}; the same exceptions, another rendering.
KEYSTONE_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


def keystone_body(error: NovaError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message, "title": KEYSTONE_TITLES.get(error.code, "Error")}}
