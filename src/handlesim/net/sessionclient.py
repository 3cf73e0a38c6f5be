"""The client side of the `Authorization: Handle` scheme (pyhandle has none): open a session, sign its nonce with
the private key of an HS_PUBKEY identity (or answer it with an HMAC keyed by an HS_SECKEY's hash), then send the
sessionId alone with every request.
"""

from __future__ import annotations

import base64
import os

import aiohttp

from ..core import keys
from ..core.errors import AuthenticationFailed
from ..core.values import ValueReference


def handle_header(**params: str) -> str:
    """`Handle version="0", k="v", ...` (values are base64 or identities: never a quote inside)."""
    return ", ".join(['Handle version="0"', *(f'{k}="{v}"' for k, v in params.items())])


def signed_header(session_id: str, nonce: bytes, identity: ValueReference, key: keys.PrivateKey,
                  alg: str = "SHA256", cnonce: bytes | None = None) -> str:
    """The header that authenticates a session: a signature over `nonce || cnonce`."""
    cnonce = cnonce if cnonce is not None else os.urandom(16)
    signature = keys.sign(key, keys.challenge_message(nonce, cnonce), alg)
    return handle_header(sessionId=session_id, id=identity.to_text(), type="HS_PUBKEY",
                         cnonce=base64.b64encode(cnonce).decode("ascii"), alg=alg,
                         signature=base64.b64encode(signature).decode("ascii"))


async def open_signed_session(http: aiohttp.ClientSession, base_url: str, identity: ValueReference,
                              key: keys.PrivateKey, alg: str = "SHA256") -> str:
    """Open and authenticate a session at `base_url`; returns the sessionId to put in `session_header`."""
    async with http.post(base_url + "/api/sessions") as reply:
        opened = await reply.json()
    session_id = opened["sessionId"]
    header = signed_header(session_id, base64.b64decode(opened["nonce"]), identity, key, alg)
    async with http.put(base_url + "/api/sessions/this", headers={"Authorization": header}) as reply:
        answer = await reply.json()
    if reply.status != 200 or answer.get("authenticated") is not True:
        raise AuthenticationFailed(f"{base_url} refused {identity.to_text()}: HTTP {reply.status} "
                                   f"{answer.get('message', '')}")
    return str(session_id)


async def open_secret_session(http: aiohttp.ClientSession, base_url: str, identity: ValueReference,
                              secret: str) -> str:
    """Open a session for an HS_SECKEY identity without sending the secret: ask for the key's salt and iterations,
    then answer the nonce with HMAC-SHA256(PBKDF2(secret), nonce || cnonce)."""
    async with http.post(base_url + "/api/sessions") as reply:
        opened = await reply.json()
    session_id, nonce = opened["sessionId"], base64.b64decode(opened["nonce"])
    ask = handle_header(sessionId=session_id, id=identity.to_text(), type="HS_SECKEY")
    async with http.get(base_url + "/api/sessions/this", headers={"Authorization": ask}) as reply:
        described = await reply.json()
    if reply.status != 200 or "keyParameters" not in described:
        raise AuthenticationFailed(f"{base_url}: no secret key for {identity.to_text()}: HTTP {reply.status} "
                                   f"{described.get('message', '')}")
    parameters = described["keyParameters"]
    digest = keys.derive_secret_digest(secret, base64.b64decode(parameters["salt"]), int(parameters["iterations"]))
    cnonce = os.urandom(16)
    header = handle_header(sessionId=session_id, id=identity.to_text(), type="HS_SECKEY",
                           cnonce=base64.b64encode(cnonce).decode("ascii"), alg="HMAC-SHA256",
                           signature=base64.b64encode(keys.secret_mac(digest, nonce + cnonce)).decode("ascii"))
    async with http.put(base_url + "/api/sessions/this", headers={"Authorization": header}) as reply:
        answer = await reply.json()
    if reply.status != 200 or answer.get("authenticated") is not True:
        raise AuthenticationFailed(f"{base_url} refused {identity.to_text()}: HTTP {reply.status} "
                                   f"{answer.get('message', '')}")
    return str(session_id)


def session_header(session_id: str) -> str:
    return handle_header(sessionId=session_id)
