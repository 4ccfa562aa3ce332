"""Who may talk to the studio: the person who started it, from the studio's own page, and nobody else.

An ASGI layer in front of the whole app (page, static files and API alike), modelled on Jupyter Server:

- **A secret per launch.** ``GET /?token=T`` sets an HttpOnly, SameSite=Strict cookie and redirects to the
  clean URL; every other request needs that cookie or ``Authorization: Bearer T`` (or ``token T``), else
  403. This keeps out other accounts on a shared machine (and, through the server, images their own
  permissions deny them) and any page that does not know T.
- **Host allow-list** (DNS rebinding): the Host must be the bound address, ``localhost``, ``127.0.0.1``,
  ``[::1]`` or an ``--allow-host`` name; bound to every interface (0.0.0.0, ::) an IP literal and this
  machine's own names pass too (rebinding needs a domain name that is not ours).
- **Same origin for changes** (cross-site requests): POST/PUT/PATCH/DELETE need
  ``Content-Type: application/json`` (a form or ``no-cors`` fetch cannot send it) and, when the browser
  sends ``Origin`` or ``Sec-Fetch-Site``, the studio's own origin.
- **Bounded bodies**: above ``max_body`` bytes the answer is 413 and no more of the body is read.

Every refusal is answered before the app runs, so it changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
from http.cookies import CookieError, SimpleCookie
from typing import Iterable, Optional
from urllib.parse import parse_qsl, urlencode

from starlette.responses import JSONResponse, Response

MAX_BODY = 4 * 1024 * 1024  # a brush stroke of 10,000 points is ~150 kB
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
LOGIN_HINT = (
    "open the address `segkit studio` printed (http://HOST:PORT/?token=...), or send 'Authorization: Bearer TOKEN'"
)


def new_token() -> str:
    """A fresh secret for one launch (32 random bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def host_name(host: str) -> str:
    """The name in a Host header: 'Example.org:8765' -> 'example.org', '[::1]:8765' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class Guard:
    """ASGI middleware: see the module's docstring. ``bound`` is the address the server listens on."""

    def __init__(
        self,
        app,
        token: str,
        bound: str = "127.0.0.1",
        allow_hosts: Iterable[str] = (),
        max_body: int = MAX_BODY,
    ):
        if not token:
            raise ValueError("the studio needs a token; it cannot be switched off")
        self.app, self.max_body = app, max_body
        self._token = token.encode()
        # per token, so two studios on one machine (cookies ignore the port) do not log each other out
        self.cookie = "segkit-studio-" + hashlib.sha256(self._token).hexdigest()[:12]
        bound = host_name(bound)
        self.any_ip = bound in WILDCARDS
        self.hosts = {*LOCAL_NAMES, bound, *(host_name(h) for h in allow_hosts)} - {""}
        if self.any_ip:
            self.hosts |= {socket.gethostname().lower(), socket.getfqdn().lower()}

    # ------------------------------------------------------------------ checks
    def host_allowed(self, host: str) -> bool:
        name = host_name(host)
        return name in self.hosts or (self.any_ip and is_ip(name))

    def _matches(self, candidate: Optional[str]) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self._token)

    def authorised(self, headers: dict) -> bool:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "token") and self._matches(credential.strip()):
            return True
        try:
            jar = SimpleCookie(headers.get("cookie", ""))
        except CookieError:
            return False
        return self.cookie in jar and self._matches(jar[self.cookie].value)

    def cross_site(self, scope, headers: dict) -> Optional[str]:
        """Why a state-changing request is not from the studio's own page, or None."""
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return f"changes need 'Content-Type: application/json', not {media or 'none'!r}"
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scope['scheme']}://{headers.get('host', '')}".lower():
            return f"changes are only taken from the studio's own page, not from origin {origin!r}"
        site = headers.get("sec-fetch-site")
        if site is not None and site.lower() != "same-origin":
            return f"changes are only taken from the studio's own page, not from a {site!r} request"
        return None

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":  # the studio has no websockets
            return await send({"type": "websocket.close", "code": 1008})
        headers = {}
        for key, value in scope["headers"]:
            headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
        respond = None
        if not self.host_allowed(headers.get("host", "")):
            respond = refuse(
                403,
                f"host {headers.get('host', '')!r} is not this studio's address; "
                f"start it with --allow-host NAME to reach it by that name",
            )
        elif scope["method"] == "GET" and "token" in dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))):
            respond = self.login(scope)
        elif not self.authorised(headers):
            respond = refuse(403, f"no valid token: {LOGIN_HINT}")
        elif scope["method"] in UNSAFE:
            why = self.cross_site(scope, headers)
            if why:
                respond = refuse(403, why)
            else:
                body = await self.read_body(headers, receive)
                if isinstance(body, Response):
                    respond = body
                else:
                    receive = replay(body, receive)
        if respond is not None:
            return await respond(scope, receive, send)
        return await self.app(scope, receive, send)

    def login(self, scope) -> Response:
        """``?token=T``: the cookie, and a redirect to the same address without the token."""
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if not self._matches(dict(query).get("token")):
            return refuse(403, f"wrong token: {LOGIN_HINT}")
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        # "/" + the path without its leading slashes: GET //evil.example/?token=T must not redirect off-site
        response = Response(
            status_code=303, headers={"Location": "/" + scope["path"].lstrip("/") + (f"?{rest}" if rest else "")}
        )
        response.set_cookie(
            self.cookie,
            self._token.decode(),
            httponly=True,
            samesite="strict",
            secure=scope["scheme"] == "https",
            path="/",
        )
        return response

    async def read_body(self, headers: dict, receive):
        """The whole body (bytes), or a 413/400 response; never reads past ``max_body``."""
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return refuse(400, f"Content-Length {length!r} is not a number")
            if int(length) > self.max_body:
                return too_large(self.max_body)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return too_large(self.max_body)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def replay(body: bytes, receive):
    """A ``receive`` that hands the app the body already read, then waits on the real one."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def again():
        return pending.pop() if pending else await receive()

    return again


def refuse(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})


def too_large(limit: int) -> Response:
    return refuse(413, f"the request body is larger than the studio takes ({limit // 1024 // 1024} MB)")
