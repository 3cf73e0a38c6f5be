"""Public keys and the `Authorization: Handle` challenge-response: core signature and proof checks, the session
table, and sessions against a running topology (a local Ed25519 key and a foreign RSA key fetched by walking)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from handlesim.core import keys
from handlesim.core.auth import hash_secret
from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.errors import AuthenticationFailed
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.core.storage import HandleRecord
from handlesim.core.values import HS_ADMIN, HS_PUBKEY, URL, AdminRecord, HandleValue, KeyData, ValueReference
from handlesim.net.client import HandleClient
from handlesim.net.sessionclient import (
    handle_header,
    open_secret_session,
    open_signed_session,
    session_header,
    signed_header,
)
from handlesim.net.sessions import SessionConfig, SessionTable
from handlesim.topology.running import RunningNode, Topology
from handlesim.wire import codec

from .test_authz_matrix import node_by_prefix

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_signatures_verify_only_with_the_right_key_and_message() -> None:
    for key, alg in ((ed25519.Ed25519PrivateKey.generate(), "SHA256"), (RSA_KEY, "SHA256"),
                     (ec.generate_private_key(ec.SECP256R1()), "SHA384")):
        public = keys.encode_public_key(key)
        signature = keys.sign(key, b"nonce" + b"cnonce", alg)
        assert keys.verify_signature(public, b"noncecnonce", signature, alg)
        assert not keys.verify_signature(public, b"noncecnoncX", signature, alg)
        assert not keys.verify_signature(keys.encode_public_key(ed25519.Ed25519PrivateKey.generate()),
                                         b"noncecnonce", signature, alg)
    assert not keys.verify_signature(b"not a key", b"m", b"s", "SHA256")
    assert not keys.verify_signature(keys.encode_public_key(RSA_KEY), b"m", keys.sign(RSA_KEY, b"m"), "MD5")


def test_verification_proof_needs_the_secret_and_is_bound_to_nonce_and_identity() -> None:
    stored = hash_secret("s3cret", os.urandom(16), 1000)
    parameters = keys.secret_parameters(stored)
    assert parameters is not None
    digest = keys.derive_secret_digest("s3cret", *parameters)
    proof = keys.verification_proof(digest, "300:0.NA/88.101", b"n1")
    assert keys.check_verification_proof(stored, "300:0.NA/88.101", b"n1", proof)
    assert not keys.check_verification_proof(stored, "300:0.NA/88.101", b"n2", proof)
    assert not keys.check_verification_proof(stored, "301:0.NA/88.101", b"n1", proof)
    wrong = keys.verification_proof(keys.derive_secret_digest("guess", *parameters), "300:0.NA/88.101", b"n1")
    assert not keys.check_verification_proof(stored, "300:0.NA/88.101", b"n1", wrong)
    assert keys.secret_parameters("plain text") is None


def test_session_table_expires_idle_sessions_and_stays_bounded() -> None:
    now = [1000.0]
    table = SessionTable(lambda: now[0], SessionConfig(idle_ttl=10.0, capacity=3))
    first = table.open()
    now[0] += 9
    assert table.get(first.session_id) is first  # use restarts the idle timer
    now[0] += 9
    assert table.get(first.session_id) is first
    now[0] += 11
    assert table.get(first.session_id) is None
    opened = [table.open() for _ in range(5)]
    assert len(table) == 3 and table.get(opened[-1].session_id) is not None
    assert table.close(opened[-1].session_id) and table.get(opened[-1].session_id) is None


def add_key_holder(node: RunningNode, handle_text: str, key: keys.PrivateKey) -> ValueReference:
    node.store.put(HandleRecord(Handle.from_text(handle_text),
                                (HandleValue(300, HS_PUBKEY, KeyData(keys.encode_public_key(key))),)))
    return ValueReference(handle_text, 300)


def add_document(node: RunningNode, handle_text: str, admin: ValueReference) -> None:
    values = (HandleValue(1, URL, "https://example.cn/doc"),
              HandleValue(100, HS_ADMIN, AdminRecord(admin.handle, admin.index)))
    node.store.put(HandleRecord(Handle.from_text(handle_text), values))


async def change_url(http: aiohttp.ClientSession, node: RunningNode, handle: str,
                     authorization: str) -> tuple[int, int]:
    body = [{"index": 1, "type": URL, "data": "https://example.cn/changed"}]
    async with http.put(f"{node.url}/api/handles/{handle}", params={"index": "1"}, json=body,
                        headers={"Authorization": authorization}) as reply:
        return reply.status, (await reply.json())["responseCode"]


async def test_local_ed25519_session_authenticates_writes_until_closed(small: Topology) -> None:
    node = node_by_prefix(small, "88.101.1001")
    key = ed25519.Ed25519PrivateKey.generate()
    alice = add_key_holder(node, "88.101.1001/ALICE", key)
    add_document(node, "88.101.1001/DOC", alice)
    async with aiohttp.ClientSession() as http:
        session_id = await open_signed_session(http, node.url, alice, key)
        async with http.get(f"{node.url}/api/sessions/this",
                            headers={"Authorization": session_header(session_id)}) as reply:
            described = await reply.json()
        assert described["authenticated"] is True and described["id"] == "300:88.101.1001/ALICE"
        assert await change_url(http, node, "88.101.1001/DOC", session_header(session_id)) == (200, 1)
        record = node.store.get(Handle.from_text("88.101.1001/DOC").key)
        assert record is not None and record.value_at(1) is not None
        assert record.value_at(1).data == "https://example.cn/changed"  # type: ignore[union-attr]
        # alice is no admin of the enterprise's own identifiers
        assert await change_url(http, node, "88.101.1001/PUMP-000001", session_header(session_id)) == (403, 401)

        async with http.post(f"{node.url}/api/sessions") as reply:
            other = await reply.json()
        assert other["authenticated"] is False
        unsigned = session_header(other["sessionId"])
        assert await change_url(http, node, "88.101.1001/DOC", unsigned) == (401, 402)
        forged = signed_header(other["sessionId"], base64.b64decode(other["nonce"]), alice,
                               ed25519.Ed25519PrivateKey.generate())
        async with http.put(f"{node.url}/api/sessions/this", headers={"Authorization": forged}) as reply:
            assert reply.status == 403 and (await reply.json())["responseCode"] == 403
        replayed = signed_header(other["sessionId"], b"another nonce", alice, key)
        assert await change_url(http, node, "88.101.1001/DOC", replayed) == (403, 403)
        secret_typed = replayed.replace('type="HS_PUBKEY"', 'type="HS_SECKEY"')
        assert await change_url(http, node, "88.101.1001/DOC", secret_typed) == (403, 404)  # alg must be HMAC
        assert await change_url(http, node, "88.101.1001/DOC", secret_typed.replace(
            'alg="SHA256"', 'alg="HMAC-SHA256"')) == (403, 403)  # alice has no secret key
        other_type = replayed.replace('type="HS_PUBKEY"', 'type="HS_CERT"')
        assert await change_url(http, node, "88.101.1001/DOC", other_type) == (501, 5)
        assert await change_url(http, node, "88.101.1001/DOC", 'Handle clientCert="true"') == (501, 5)

        async with http.delete(f"{node.url}/api/sessions/this",
                               headers={"Authorization": session_header(session_id)}) as reply:
            assert reply.status == 200
        assert await change_url(http, node, "88.101.1001/DOC", session_header(session_id)) == (401, 402)
        assert await change_url(http, node, "88.101.1001/DOC", 'Handle version="0", sessionId="nope"') == (401, 402)


async def test_foreign_rsa_key_is_fetched_by_walking_the_hierarchy(small: Topology) -> None:
    node = node_by_prefix(small, "88.101.1001")
    bob = add_key_holder(node_by_prefix(small, "88.102.2001"), "88.102.2001/BOB", RSA_KEY)
    add_document(node, "88.101.1001/BOBS", bob)
    async with aiohttp.ClientSession() as http:
        session_id = await open_signed_session(http, node.url, bob, RSA_KEY)
        assert await change_url(http, node, "88.101.1001/BOBS", session_header(session_id)) == (200, 1)
        # a session opened with Basic is authenticated at once (and a foreign Basic identity verified remotely)
        secondary = node_by_prefix(small, "88.101")
        user = "300%3A0.NA/88.101:" + secondary.plan.secret
        basic = "Basic " + base64.b64encode(user.encode()).decode()
        async with http.post(f"{node.url}/api/sessions", headers={"Authorization": basic}) as reply:
            opened = await reply.json()
        assert opened["authenticated"] is True and opened["id"] == "300:0.NA/88.101"
        header = session_header(opened["sessionId"])
        assert await change_url(http, node, "88.101.1001/PUMP-000001", header) == (200, 1)


async def test_msgpack_node_to_node_writes_carry_the_same_identities(small: Topology) -> None:
    node = node_by_prefix(small, "88.101.1001")
    secondary = node_by_prefix(small, "88.101")
    identity = ValueReference("0.NA/88.101", 300)
    handle = Handle.from_text("88.101.1001/FROM-SECONDARY")
    request = Request(OpCode.CREATE_HANDLE, handle, values=(HandleValue(1, URL, "https://example.cn/n2n"),),
                      overwrite=False)
    async with HandleClient(media=codec.MSGPACK) as client:
        wrong = await client.send(node.url, request, credentials=(identity, "guess"))
        assert wrong.code == ResponseCode.AUTHENTICATION_FAILED and node.store.get(handle.key) is None
        other = node_by_prefix(small, "88.102")
        foreign = await client.send(node.url, request, credentials=(ValueReference("0.NA/88.102", 300),
                                                                    other.plan.secret))
        assert foreign.code == ResponseCode.INSUFFICIENT_PERMISSIONS and node.store.get(handle.key) is None
        accepted = await client.send(node.url, request, credentials=(identity, secondary.plan.secret))
        assert accepted.ok and accepted.created
    record = node.store.get(handle.key)
    assert record is not None and any(v.type_key == HS_ADMIN for v in record.values)


async def test_verify_desk_issues_one_use_nonces_and_never_reveals_the_digest(small: Topology) -> None:
    holder = node_by_prefix(small, "88.101")
    record = holder.store.get(Handle.from_text("0.NA/88.101").key)
    assert record is not None and record.value_at(300) is not None
    stored = str(record.value_at(300).data)  # type: ignore[union-attr]
    url = f"{holder.url}/api/verify"
    async with aiohttp.ClientSession() as http:
        async def ask(body: dict[str, str]) -> tuple[int, dict[str, object]]:
            async with http.post(url, json=body) as reply:
                return reply.status, await reply.json()

        status, challenge = await ask({"id": "300:0.NA/88.101"})
        assert status == 200 and challenge["responseCode"] == 1
        assert stored.rsplit("$", 1)[1] not in str(challenge)  # salt and iterations only
        salt, nonce = base64.b64decode(str(challenge["salt"])), base64.b64decode(str(challenge["nonce"]))
        digest = keys.derive_secret_digest(holder.plan.secret, salt, int(str(challenge["iterations"])))
        proof = base64.b64encode(keys.verification_proof(digest, "300:0.NA/88.101", nonce)).decode()
        answer = {"id": "300:0.NA/88.101", "nonce": str(challenge["nonce"]), "proof": proof}
        status, verdict = await ask(answer)
        assert status == 200 and verdict["verified"] is True
        status, replay = await ask(answer)
        assert status == 403 and replay["responseCode"] == 404  # the nonce was used up
        _, fresh = await ask({"id": "300:0.NA/88.101"})
        wrong = keys.verification_proof(keys.derive_secret_digest("guess", salt, 1000), "300:0.NA/88.101",
                                        base64.b64decode(str(fresh["nonce"])))
        _, verdict = await ask({"id": "300:0.NA/88.101", "nonce": str(fresh["nonce"]),
                                "proof": base64.b64encode(wrong).decode()})
        assert verdict["verified"] is False
        status, missing = await ask({"id": "300:0.NA/88.999"})
        assert status == 404 and missing["responseCode"] == 100
        status, not_a_key = await ask({"id": "100:0.NA/88.101"})
        assert status == 403 and not_a_key["responseCode"] == 404


async def test_keygen_value_registers_an_identity_that_opens_sessions(small: Topology, tmp_path: Path) -> None:
    from click.testing import CliRunner
    from cryptography.hazmat.primitives import serialization

    from handlesim.cli import main

    pem = tmp_path / "carol.pem"
    result = CliRunner().invoke(main, ["keygen", str(pem), "--type", "rsa"])
    assert result.exit_code == 0, result.output
    assert (pem.stat().st_mode & 0o777) == 0o600
    value = json.loads(result.output)
    key = serialization.load_pem_private_key(pem.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    node = node_by_prefix(small, "88.101.1001")
    owner = "Basic " + base64.b64encode(f"300%3A0.NA/88.101.1001:{node.plan.secret}".encode()).decode()
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{node.url}/api/handles/88.101.1001/CAROL", json=[value],
                            headers={"Authorization": owner}) as reply:
            assert reply.status == 200, await reply.text()
        carol = ValueReference("88.101.1001/CAROL", 300)
        add_document(node, "88.101.1001/CAROLS", carol)
        session_id = await open_signed_session(http, node.url, carol, key)
        assert await change_url(http, node, "88.101.1001/CAROLS", session_header(session_id)) == (200, 1)
    assert CliRunner().invoke(main, ["keygen", str(pem)]).exit_code != 0  # never overwrites a key


async def test_secret_key_sessions_local_and_foreign_never_send_the_secret(small: Topology) -> None:
    node = node_by_prefix(small, "88.101.1001")
    secondary = node_by_prefix(small, "88.101")
    async with aiohttp.ClientSession() as http:
        owner = ValueReference("0.NA/88.101.1001", 300)
        session_id = await open_secret_session(http, node.url, owner, node.plan.secret)
        assert await change_url(http, node, "88.101.1001/PUMP-000001", session_header(session_id)) == (200, 1)

        remote = node.server.authenticator.remote
        assert remote is not None
        asked = remote.exchanges
        admin = ValueReference("0.NA/88.101", 300)  # key held by the secondary and the roots: checked there
        session_id = await open_secret_session(http, node.url, admin, secondary.plan.secret)
        assert remote.exchanges == asked + 1
        assert await change_url(http, node, "88.101.1001/CMPR-000002", session_header(session_id)) == (200, 1)

        for identity in (owner, admin):
            try:
                await open_secret_session(http, node.url, identity, "not-the-secret")
            except AuthenticationFailed as exc:
                assert "HTTP 403" in exc.message
            else:
                raise AssertionError(f"a wrong secret opened a session for {identity.to_text()}")
        async with http.post(f"{node.url}/api/sessions") as reply:
            opened = await reply.json()
        ask = handle_header(sessionId=opened["sessionId"], id="300:88.101.1001/PUMP-000001", type="HS_SECKEY")
        async with http.get(f"{node.url}/api/sessions/this", headers={"Authorization": ask}) as reply:
            assert reply.status == 403 and (await reply.json())["responseCode"] == 404  # no such key
