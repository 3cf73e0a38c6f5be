"""Challenge-response and the credential section of the native protocol (RFC 3652 sections 2.2.4 and 3.5).

An administrative request without proof of identity is answered 402 with a nonce and a digest of the request (RRDG);
the client answers with OC_RESPONSE_TO_CHALLENGE naming its key `index:handle` and a proof over `nonce || digest`:

    HS_SECKEY  octet hash code, then the MAC:
               1 MD5, 2 SHA-1, 3 SHA-256: H(key || nonce || digest || key)
               0x12 HMAC-SHA1, 0x13 HMAC-SHA256: HMAC(key, nonce || digest)
               0x22 PBKDF2-HMAC-SHA1: salt (byte string), iterations int4, key length in bits int4, then
                    HMAC-SHA1(PBKDF2-HMAC-SHA1(key, salt, iterations, bits), nonce || digest) as a byte string
    HS_PUBKEY  digest algorithm name (UTF8-String, e.g. SHA256), then the signature over nonce || digest

The `key` of an HS_SECKEY proof is the secret the identity's HS_SECKEY value holds. Handle.Net stores that secret as
it is; a handlesim node stores only a salted PBKDF2-SHA256 hash of it, so here the key is that hash's digest: the
same key the REST `Authorization: Handle` scheme uses (a client gets the salt and iterations from
`/api/sessions/this` with `type="HS_SECKEY"`). These are pure functions; the node decides which key to use.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ...core.errors import InvalidCredential
from .body import HASH_MD5, HASH_MD5_OLD, HASH_SHA1, HASH_SHA256, RequestDigest
from .primitives import Reader, Writer

HMAC_SHA1, HMAC_SHA256, PBKDF2_HMAC_SHA1 = 0x12, 0x13, 0x22
SECRET_KEY_CODES = frozenset({HASH_MD5_OLD, HASH_MD5, HASH_SHA1, HASH_SHA256, HMAC_SHA1, HMAC_SHA256,
                              PBKDF2_HMAC_SHA1})
MAX_PBKDF2_ITERATIONS = 100_000
"""Most PBKDF2 rounds a client may ask a node to compute for one answer (the reference client uses 10,000)."""
MAX_PBKDF2_BITS = 1024
MAX_SALT_BYTES = 256
NONCE_BYTES = 16
"""Size of a challenge nonce (Common.CHALLENGE_NONCE_SIZE)."""

_PLAIN_DIGESTS = {HASH_MD5_OLD: "md5", HASH_MD5: "md5", HASH_SHA1: "sha1", HASH_SHA256: "sha256"}


def request_digest(signed_part: bytes, version: tuple[int, int]) -> RequestDigest:
    """The digest of a request's header and body, in the hash its answer's protocol version uses."""
    if version >= (2, 7):
        return RequestDigest(HASH_SHA256, hashlib.sha256(signed_part).digest())
    if version >= (2, 1):
        return RequestDigest(HASH_SHA1, hashlib.sha1(signed_part, usedforsecurity=False).digest())
    return RequestDigest(HASH_MD5_OLD, hashlib.md5(signed_part, usedforsecurity=False).digest())


def challenge_message(nonce: bytes, digest: RequestDigest) -> bytes:
    """What a challenge answer proves knowledge of a key over."""
    return nonce + digest.digest


# -- HS_SECKEY answers -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pbkdf2Parameters:
    salt: bytes
    iterations: int
    bits: int


@dataclass(frozen=True, slots=True)
class SecretKeyAnswer:
    hash_code: int
    mac: bytes
    pbkdf2: Pbkdf2Parameters | None = None

    def encode(self) -> bytes:
        out = Writer().byte(self.hash_code)
        if self.pbkdf2 is None:
            return out.raw(self.mac).getvalue()
        params = self.pbkdf2
        return out.byte_string(params.salt).int4(params.iterations).int4(params.bits).byte_string(
            self.mac).getvalue()


def decode_secret_key_answer(raw: bytes) -> SecretKeyAnswer:
    """InvalidCredential (404) when the answer is not one of the formats above."""
    reader = Reader(raw, "HS_SECKEY answer", error=InvalidCredential)
    code = reader.byte("hash code")
    if code not in SECRET_KEY_CODES:
        raise reader.fail(f"hash code {code:#x} is not a secret-key answer algorithm")
    if code != PBKDF2_HMAC_SHA1:
        return SecretKeyAnswer(code, reader.raw(reader.remaining, "MAC"))
    salt = reader.byte_string("salt", MAX_SALT_BYTES)
    iterations, bits = reader.int4("iterations"), reader.int4("key length")
    if not 0 < iterations <= MAX_PBKDF2_ITERATIONS or not 0 < bits <= MAX_PBKDF2_BITS or bits % 8:
        raise reader.fail(f"PBKDF2 with {iterations} iterations and {bits}-bit keys is refused (1.."
                          f"{MAX_PBKDF2_ITERATIONS} iterations, 8..{MAX_PBKDF2_BITS} bits in whole bytes)")
    mac = reader.byte_string("MAC", 64)
    reader.done()
    return SecretKeyAnswer(code, mac, Pbkdf2Parameters(salt, iterations, bits))


def secret_key_mac(code: int, key: bytes, message: bytes, pbkdf2: Pbkdf2Parameters | None = None) -> bytes:
    """The MAC a holder of `key` gives for `message` with hash code `code`."""
    if code == HMAC_SHA1:
        return hmac.new(key, message, hashlib.sha1).digest()
    if code == HMAC_SHA256:
        return hmac.new(key, message, hashlib.sha256).digest()
    if code == PBKDF2_HMAC_SHA1:
        if pbkdf2 is None:
            raise InvalidCredential("a PBKDF2-HMAC-SHA1 answer needs its salt, iterations and key length")
        # Java's PBEKeySpec takes the key as chars, one per byte, and PBKDF2 encodes them as UTF-8: do the same
        password = key.decode("latin-1").encode("utf-8")
        derived = hashlib.pbkdf2_hmac("sha1", password, pbkdf2.salt, pbkdf2.iterations, pbkdf2.bits // 8)
        return hmac.new(derived, message, hashlib.sha1).digest()
    name = _PLAIN_DIGESTS.get(code)
    if name is None:
        raise InvalidCredential(f"hash code {code:#x} is not a secret-key answer algorithm")
    return hashlib.new(name, key + message + key, usedforsecurity=False).digest()


def check_secret_key_answer(answer: SecretKeyAnswer, key: bytes, message: bytes) -> bool:
    """Constant-time check of an answer against the key."""
    return hmac.compare_digest(secret_key_mac(answer.hash_code, key, message, answer.pbkdf2), answer.mac)


# -- HS_PUBKEY answers -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicKeyAnswer:
    algorithm: str
    """The digest of the signature: SHA256 (also SHA1, MD5 in old clients)."""
    signature: bytes

    def encode(self) -> bytes:
        return Writer().text(self.algorithm).byte_string(self.signature).getvalue()


def decode_public_key_answer(raw: bytes) -> PublicKeyAnswer:
    reader = Reader(raw, "HS_PUBKEY answer", error=InvalidCredential)
    answer = PublicKeyAnswer(reader.text("digest algorithm", 64), reader.byte_string("signature", 8192))
    reader.done()
    return answer


# -- the credential section -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credential:
    """A message's credential section: who signed it and how (HS_SIGNED with a key, HS_MAC with a session key).

    This node reads it only to tell what a client sent; it signs nothing (CERT is not supported)."""

    signer_handle: str
    signer_index: int
    signature_type: str
    digest_algorithm: str
    signature: bytes
    version: int = 0
    flags: int = 0

    def encode(self) -> bytes:
        section = Writer().text(self.digest_algorithm).byte_string(self.signature).getvalue()
        out = Writer().byte(self.version).byte(0).int2(self.flags).text(self.signer_handle).int4(self.signer_index)
        return out.text(self.signature_type).byte_string(section).getvalue()


def decode_credential(raw: bytes) -> Credential:
    reader = Reader(raw, "credential section", error=InvalidCredential)
    version = reader.byte("version")
    reader.byte("reserved")
    flags = reader.int2("flags")
    signer = reader.text("signer handle", 2048)
    index = reader.int4("signer index")
    kind = reader.text("signature type", 64)
    section = Reader(reader.byte_string("signature section"), "signature section", error=InvalidCredential)
    reader.done()
    algorithm = section.text("digest algorithm", 64)
    signature = section.byte_string("signature")
    section.done()
    return Credential(signer, index, kind, algorithm, signature, version, flags)
