"""Key material as pure functions: HS_PUBKEY signatures (Ed25519, RSA, ECDSA through `cryptography`) and the
HMAC proofs a node uses to have a secret key verified by the node that holds it.

HS_PUBKEY data is the DER SubjectPublicKeyInfo of the key (PEM is accepted on input). A challenge-response
signature is made over `nonce || cnonce` (the raw bytes of the server's and the client's nonce), as the Handle.Net
REST API's `Authorization: Handle` scheme does; `alg` names the digest (SHA256, SHA384, SHA512; Ed25519 hashes
internally and ignores it).

HS_SECKEY identities may answer the same challenge with `HMAC-SHA256(PBKDF2 digest of the secret, nonce || cnonce)`
(`alg="HMAC-SHA256"`), having asked for the hash's salt and iteration count first.

Remote secret-key verification (our counterpart of Handle.Net's OC_VERIFY_CHALLENGE) never sends the secret, nor the
PBKDF2 digest the holder stores, to anyone: the holder hands out the salt, the iteration count and a fresh one-use
nonce; the relying node derives the digest from the secret the client gave it and returns
`HMAC-SHA256(digest, VERIFY_CONTEXT || identity || nonce)`; the holder recomputes that from its stored digest.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from .auth import parse_hashed_secret

PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

VERIFY_CONTEXT = b"handlesim-verify-secret-v1\x00"
"""Domain separation: a verification proof can never be mistaken for any other HMAC over the same key."""

_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256, "SHA-256": hashes.SHA256,
    "SHA384": hashes.SHA384, "SHA-384": hashes.SHA384,
    "SHA512": hashes.SHA512, "SHA-512": hashes.SHA512,
}


class KeyFormatError(ValueError):
    """Bytes that are not a public key this node understands."""


def load_public_key(data: bytes) -> PublicKey:
    """An HS_PUBKEY value's key: DER SubjectPublicKeyInfo, or PEM text."""
    try:
        key = (serialization.load_pem_public_key(data) if data.lstrip().startswith(b"-----BEGIN")
               else serialization.load_der_public_key(data))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"not a DER or PEM public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise KeyFormatError(f"unsupported public key type {type(key).__name__} (use Ed25519, RSA or EC)")
    return key


def encode_public_key(key: PublicKey | PrivateKey) -> bytes:
    """The HS_PUBKEY data for a key (the public half of a private key): DER SubjectPublicKeyInfo."""
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
                                            | ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _digest(alg: str) -> hashes.HashAlgorithm:
    digest = _DIGESTS.get(alg.upper())
    if digest is None:
        raise KeyFormatError(f"unsupported signature digest {alg!r} (SHA256, SHA384 or SHA512)")
    return digest()


def sign(key: PrivateKey, message: bytes, alg: str = "SHA256") -> bytes:
    """A client's signature over `message` (RSA: PKCS#1 v1.5, as Handle.Net's SHA256withRSA)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(message, padding.PKCS1v15(), _digest(alg))
    return key.sign(message, ec.ECDSA(_digest(alg)))


def verify_signature(key_data: bytes, message: bytes, signature: bytes, alg: str) -> bool:
    """Does `signature` over `message` verify under the HS_PUBKEY data `key_data`? Malformed input never verifies."""
    try:
        key = load_public_key(key_data)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), _digest(alg))
        else:
            key.verify(signature, message, ec.ECDSA(_digest(alg)))
    except (InvalidSignature, KeyFormatError, ValueError):
        return False
    return True


def challenge_message(nonce: bytes, cnonce: bytes) -> bytes:
    """What the client signs in the `Authorization: Handle` challenge-response."""
    return nonce + cnonce


# -- remote secret-key verification ------------------------------------------------------------------------------

def secret_parameters(stored: str) -> tuple[bytes, int] | None:
    """(salt, iterations) of a stored HS_SECKEY hash, which the holder may hand out; None if it is malformed."""
    parsed = parse_hashed_secret(stored)
    return None if parsed is None else (parsed[1], parsed[0])


def derive_secret_digest(secret: str, salt: bytes, iterations: int) -> bytes:
    """The PBKDF2-HMAC-SHA256 digest the holder stores for `secret` (computed by the relying node)."""
    return hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)


def verification_proof(digest: bytes, identity: str, nonce: bytes) -> bytes:
    """The relying node's answer to a holder's challenge: bound to the identity and to one nonce."""
    return hmac.new(digest, VERIFY_CONTEXT + identity.encode("utf-8") + b"\x00" + nonce, hashlib.sha256).digest()


def secret_mac(digest: bytes, message: bytes) -> bytes:
    """The `Authorization: Handle` answer for an HS_SECKEY identity: HMAC-SHA256 keyed with the PBKDF2 digest of
    the secret (the client derives it from the salt and iterations the server hands out) over `nonce || cnonce`."""
    return hmac.new(digest, message, hashlib.sha256).digest()


def check_secret_mac(stored: str, message: bytes, mac: bytes) -> bool:
    """The key holder's check of a `secret_mac` against its stored hash."""
    parsed = parse_hashed_secret(stored)
    return parsed is not None and hmac.compare_digest(secret_mac(parsed[2], message), mac)


def check_verification_proof(stored: str, identity: str, nonce: bytes, proof: bytes) -> bool:
    """The holder's check of a proof against its stored hash (constant time; a malformed hash never matches)."""
    parsed = parse_hashed_secret(stored)
    if parsed is None:
        return False
    return hmac.compare_digest(verification_proof(parsed[2], identity, nonce), proof)
