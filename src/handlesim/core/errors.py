"""One exception tree mirroring the Handle response codes; the boundary turns these into protocol replies."""

from __future__ import annotations

from typing import ClassVar

from .codes import ResponseCode, http_status


class HandleError(Exception):
    """Base of every error handlesim raises in protocol terms.

    Each class carries its `response_code` and an `http_status_hint` (the Handle.Net REST mapping), so an adapter can
    answer without a lookup table of its own.
    """

    response_code: ClassVar[ResponseCode] = ResponseCode.ERROR

    def __init__(self, message: str, *, handle: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.handle = handle

    @property
    def http_status_hint(self) -> int:
        return http_status(self.response_code, is_read=False)


class ServerTooBusy(HandleError):
    response_code = ResponseCode.SERVER_TOO_BUSY


class ProtocolError(HandleError):
    """The request is malformed: bad encoding, missing fields, wrong types."""

    response_code = ResponseCode.PROTOCOL_ERROR


class OperationNotSupported(HandleError):
    response_code = ResponseCode.OPERATION_NOT_SUPPORTED


class RecursionCountTooHigh(HandleError):
    response_code = ResponseCode.RECURSION_COUNT_TOO_HIGH


class ServerReadOnly(HandleError):
    response_code = ResponseCode.SERVER_BACKUP


class HandleNotFound(HandleError):
    response_code = ResponseCode.HANDLE_NOT_FOUND


class HandleAlreadyExists(HandleError):
    response_code = ResponseCode.HANDLE_ALREADY_EXISTS


class InvalidHandle(HandleError, ValueError):
    """The identifier text is not a valid handle: the message says what is wrong and at which character."""

    response_code = ResponseCode.INVALID_HANDLE


class ValuesNotFound(HandleError):
    response_code = ResponseCode.VALUES_NOT_FOUND


class ValueAlreadyExists(HandleError):
    response_code = ResponseCode.VALUE_ALREADY_EXISTS


class InvalidValue(HandleError, ValueError):
    response_code = ResponseCode.INVALID_VALUE


class ServerNotResponsible(HandleError):
    response_code = ResponseCode.SERVER_NOT_RESPONSIBLE


class InvalidAdmin(HandleError):
    response_code = ResponseCode.INVALID_ADMIN


class InsufficientPermissions(HandleError):
    response_code = ResponseCode.INSUFFICIENT_PERMISSIONS


class AuthenticationNeeded(HandleError):
    response_code = ResponseCode.AUTHENTICATION_NEEDED


class AuthenticationFailed(HandleError):
    response_code = ResponseCode.AUTHENTICATION_FAILED


class InvalidCredential(HandleError):
    response_code = ResponseCode.INVALID_CREDENTIAL


class ResolutionError(HandleError):
    """A resolution walk could not finish: a referral loop, a dead end, or every server of a site failed."""

    response_code = ResponseCode.ERROR


class TransportError(ResolutionError):
    """A server could not be reached or did not answer in time (raised by transports, digested by Resolution)."""


class StoreError(HandleError):
    """The store failed underneath a request (disk full, corrupt file); the request changed nothing."""

    response_code = ResponseCode.ERROR


ERROR_CLASSES: dict[int, type[HandleError]] = {
    cls.response_code: cls
    for cls in (
        ServerTooBusy, ProtocolError, OperationNotSupported, RecursionCountTooHigh, ServerReadOnly, HandleNotFound,
        HandleAlreadyExists, InvalidHandle, ValuesNotFound, ValueAlreadyExists, InvalidValue, ServerNotResponsible,
        InvalidAdmin, InsufficientPermissions, AuthenticationNeeded, AuthenticationFailed, InvalidCredential,
    )
}


def error_for_code(code: int, message: str, handle: str | None = None) -> HandleError:
    """Rebuild the typed error for a response code received from a peer."""
    cls = ERROR_CLASSES.get(code, HandleError)
    err = cls(message, handle=handle)
    return err
