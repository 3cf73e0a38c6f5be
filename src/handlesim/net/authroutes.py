"""The authentication routes of a node: `/api/sessions` (Handle.Net REST sessions) and `/api/verify` (node to node).

    POST   /api/sessions        open a session: {"sessionId", "nonce", "authenticated"}; with a Basic header the
                                session is authenticated at once as that identity
    GET    /api/sessions/this   the session named by `Authorization: Handle version="0", sessionId="..."`; with id,
    PUT|POST /api/sessions/this   type, cnonce, alg and signature in the header it is authenticated first; with only
                                id and type="HS_SECKEY", the answer adds that key's "keyParameters" (salt, iterations)
    DELETE /api/sessions/this   end the session
    POST   /api/verify          a key holder's side of remote secret-key verification (net/verify.py)
"""

from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from ..core.auth import parse_identity
from ..core.values import HS_SECKEY
from .credentials import Authenticator, parse_handle_scheme
from .routes import Route
from .verify import VERIFY_ROUTE, VerificationDesk

SESSIONS_ROUTE = "/api/sessions"
THIS_SESSION_ROUTE = "/api/sessions/this"


class AuthRoutes:
    def __init__(self, authenticator: Authenticator, desk: VerificationDesk) -> None:
        self.authenticator = authenticator
        self.desk = desk

    def routes(self) -> list[Route]:
        return [
            Route("POST", SESSIONS_ROUTE, self.open_session),
            Route("POST", SESSIONS_ROUTE + "/", self.open_session),
            Route("GET", THIS_SESSION_ROUTE, self.this_session),
            Route("PUT", THIS_SESSION_ROUTE, self.this_session),
            Route("POST", THIS_SESSION_ROUTE, self.this_session),
            Route("DELETE", THIS_SESSION_ROUTE, self.close_session),
            Route("POST", VERIFY_ROUTE, self.desk.route),
        ]

    async def open_session(self, request: web.Request) -> web.Response:
        session = self.authenticator.sessions.open()
        header = request.headers.get("Authorization", "")
        if header.partition(" ")[0].lower() == "basic":
            try:
                session.identity = await self.authenticator.authenticate(header)
            except BaseException:
                self.authenticator.sessions.close(session.session_id)
                raise
        return web.json_response({"responseCode": 1, **session.describe()})

    async def this_session(self, request: web.Request) -> web.Response:
        params = parse_handle_scheme(request.headers.get("Authorization", "Handle"))
        session = self.authenticator.session_of(params)
        if "signature" in params:
            await self.authenticator.authenticate_session(params)
        answer = {"responseCode": 1, **session.describe()}
        if "signature" not in params and params.get("type", "").upper() == HS_SECKEY and params.get("id"):
            # an HS_SECKEY client first asks how its secret is hashed, then answers with an HMAC keyed by the hash
            identity = parse_identity(unquote(params["id"]))
            answer["keyParameters"] = await self.authenticator.secret_parameters(identity)
        return web.json_response(answer)

    async def close_session(self, request: web.Request) -> web.Response:
        params = parse_handle_scheme(request.headers.get("Authorization", "Handle"))
        session = self.authenticator.session_of(params)
        self.authenticator.sessions.close(session.session_id)
        return web.json_response({"responseCode": 1, "sessionId": session.session_id, "authenticated": False})
