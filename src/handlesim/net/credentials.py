"""Authentication at the HTTP edge: HTTP Basic `index%3Ahandle:secret`, checked against the node's HS_SECKEY values."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import unquote

from ..core.auth import verify_secret
from ..core.errors import AuthenticationFailed, InvalidCredential, ProtocolError
from ..core.handle import Handle
from ..core.service import HandleService
from ..core.values import HS_SECKEY, ValueReference


def parse_basic(header: str) -> tuple[ValueReference, str]:
    """`Basic base64(index%3Ahandle:secret)` -> (identity, secret); the user is percent-decoded as pyhandle sends it."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        raise ProtocolError(f"unsupported Authorization scheme {scheme!r}; use Basic with index:handle as the user")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error, and non-ASCII text in the header
        raise InvalidCredential("the Basic credentials are not valid base64 of UTF-8 text") from None
    user, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidCredential("the Basic credentials have no ':' between user and secret")
    user = unquote(user)
    try:
        identity = ValueReference.from_text(user)
        Handle.from_text(identity.handle)
    except ValueError as exc:
        raise InvalidCredential(f"user {user!r} is not an identity INDEX:HANDLE ({exc})") from None
    return identity, secret


class Authenticator:
    """Verifies identities against the secret keys this node holds, remembering recent verdicts.

    PBKDF2 is slow by design, so a verified (identity, secret digest) pair is remembered until a record changes.
    """

    def __init__(self, service: HandleService, capacity: int = 4096) -> None:
        self.service = service
        self.capacity = capacity
        self._verdicts: dict[tuple[str, int, bytes], bool] = {}
        service.listeners.append(self._forget)

    def authenticate(self, header: str) -> ValueReference:
        identity, secret = parse_basic(header)
        handle_key = Handle.from_text(identity.handle).key
        memo = (handle_key, identity.index, hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest())
        verdict = self._verdicts.get(memo)
        if verdict is None:
            verdict = self._verify(handle_key, identity, secret)
            if len(self._verdicts) >= self.capacity:
                self._verdicts.clear()
            self._verdicts[memo] = verdict
        if not verdict:
            raise AuthenticationFailed(f"authentication failed for {identity.to_text()}: wrong secret or no such key")
        return identity

    def _verify(self, handle_key: str, identity: ValueReference, secret: str) -> bool:
        record = self.service.store.get(handle_key)
        value = record.value_at(identity.index) if record is not None else None
        if value is None or value.type_key != HS_SECKEY or not isinstance(value.data, str):
            return False
        return verify_secret(value.data, secret)

    def _forget(self, key: str) -> None:
        self._verdicts.clear()
