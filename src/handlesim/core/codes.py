"""Operation and response codes of the Handle protocol (RFC 3652, Handle.Net v9), and their HTTP status mapping."""

from __future__ import annotations

from enum import IntEnum


class OpCode(IntEnum):
    RESOLUTION = 1
    GET_SITE_INFO = 2
    CREATE_HANDLE = 100
    DELETE_HANDLE = 101
    ADD_VALUE = 102
    REMOVE_VALUE = 103
    MODIFY_VALUE = 104
    LIST_HANDLES = 105
    LIST_NAS = 106
    CHALLENGE_RESPONSE = 200
    VERIFY_RESPONSE = 201
    HOME_NA = 300
    UNHOME_NA = 301
    LIST_HOMED_NAS = 302
    SESSION_SETUP = 400
    SESSION_TERMINATE = 401
    SESSION_EXCHANGEKEY = 402
    RETRIEVE_TXN_LOG = 1000
    DUMP_HANDLES = 1001
    BACKUP_SERVER = 1002
    GET_NEXT_TXN_ID = 1003


class ResponseCode(IntEnum):
    SUCCESS = 1
    ERROR = 2
    SERVER_TOO_BUSY = 3
    PROTOCOL_ERROR = 4
    OPERATION_NOT_SUPPORTED = 5
    RECURSION_COUNT_TOO_HIGH = 6
    SERVER_BACKUP = 7
    HANDLE_NOT_FOUND = 100
    HANDLE_ALREADY_EXISTS = 101
    INVALID_HANDLE = 102
    VALUES_NOT_FOUND = 200
    VALUE_ALREADY_EXISTS = 201
    INVALID_VALUE = 202
    OUT_OF_DATE_SITE_INFO = 300
    SERVER_NOT_RESPONSIBLE = 301
    SERVICE_REFERRAL = 302
    PREFIX_REFERRAL = 303
    INVALID_ADMIN = 400
    INSUFFICIENT_PERMISSIONS = 401
    AUTHENTICATION_NEEDED = 402
    AUTHENTICATION_FAILED = 403
    INVALID_CREDENTIAL = 404
    AUTHEN_TIMEOUT = 405
    AUTHEN_ERROR = 406
    SESSION_TIMEOUT = 500
    SESSION_FAILED = 501
    INVALID_SESSION_KEY = 502
    NEED_RSAKEY_FOR_SESSIONEXCHANGE = 503
    INVALID_SESSIONSETUP_REQUEST = 504
    SESSION_MESSAGE_REJECTED = 505

    @classmethod
    def from_int(cls, code: int) -> ResponseCode | int:
        """The enum member for a known code; the bare int for one this version does not know."""
        try:
            return cls(code)
        except ValueError:
            return code


# One table, as the Handle.Net REST servlet maps codes; SUCCESS and VALUES_NOT_FOUND depend on the operation.
_HTTP_STATUS: dict[int, int] = {
    ResponseCode.HANDLE_NOT_FOUND: 404,
    ResponseCode.HANDLE_ALREADY_EXISTS: 409,
    ResponseCode.VALUE_ALREADY_EXISTS: 409,
    ResponseCode.PROTOCOL_ERROR: 400,
    ResponseCode.INVALID_HANDLE: 400,
    ResponseCode.INVALID_VALUE: 400,
    ResponseCode.SERVER_NOT_RESPONSIBLE: 400,
    ResponseCode.SERVICE_REFERRAL: 300,
    ResponseCode.PREFIX_REFERRAL: 300,
    ResponseCode.AUTHENTICATION_NEEDED: 401,
    ResponseCode.INVALID_ADMIN: 403,
    ResponseCode.INSUFFICIENT_PERMISSIONS: 403,
    ResponseCode.AUTHENTICATION_FAILED: 403,
    ResponseCode.INVALID_CREDENTIAL: 403,
    ResponseCode.SERVER_TOO_BUSY: 503,
    ResponseCode.SERVER_BACKUP: 503,
    ResponseCode.OPERATION_NOT_SUPPORTED: 501,
}


def http_status(code: int, *, is_read: bool = True, created: bool = False) -> int:
    """The HTTP status the Handle.Net REST API gives a response code.

    `created` is true for a successful create/add made with overwrite off (201); VALUES_NOT_FOUND is 200 on a read and
    400 on a write.
    """
    if code == ResponseCode.SUCCESS:
        return 201 if created else 200
    if code == ResponseCode.VALUES_NOT_FOUND:
        return 200 if is_read else 400
    return _HTTP_STATUS.get(code, 500)


WRITE_OPS = frozenset(
    {OpCode.CREATE_HANDLE, OpCode.DELETE_HANDLE, OpCode.ADD_VALUE, OpCode.REMOVE_VALUE, OpCode.MODIFY_VALUE,
     OpCode.HOME_NA, OpCode.UNHOME_NA}
)
