"""Who may talk to the server: the checks every request passes before any route sees it.

A server on 127.0.0.1 is still reachable from any web page the user visits, through the
browser. Three doors are shut here:

* DNS rebinding: a page on attacker.example whose name later resolves to 127.0.0.1 talks to
  this server as its own origin, so the browser's same-origin rule does not stop it. It
  cannot change the `Host` header its browser sends, though, so only the names this server
  is served under are accepted (IP literals too when it listens on every address: a page
  addressed by IP is that server's own page, never a rebound name).
* Cross-site requests (CSRF): a foreign page can still *send* a form or fetch to this server
  without reading the answer. Requests that change anything are refused when their `Origin`
  is not this server, or when the browser's `Sec-Fetch-Site` says another site sent them;
  sub-resource loads (img, script) from another site are refused too. No CORS header is
  ever sent, so no other origin may read an answer.
* Other people on the network, when --host is not loopback: an access token, sent as
  `Authorization: Bearer TOKEN` or in the cookie that opening `/?token=TOKEN` sets (so the
  page, its images and its event streams carry it without putting it in every URL).
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
COOKIE = "brushwork_token"
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
WILDCARDS = ("0.0.0.0", "::", "")


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def split_host(value: str, scheme: str) -> tuple[str, int] | None:
    """'Example.org:8000' -> ('example.org', 8000); '[::1]' -> ('::1', 80); None if malformed."""
    try:
        parts = urlsplit(f"//{value}")
        return (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 80)
    except ValueError:
        return None


@dataclass(frozen=True)
class Policy:
    """What the guard allows: the host names it serves, whether any IP literal is one of them
    (when listening on every address), and the token, if one is needed."""

    names: frozenset[str] = frozenset(LOOPBACK_NAMES)
    any_ip: bool = False
    token: str | None = None

    def serves(self, name: str) -> bool:
        return name in self.names or (self.any_ip and is_ip(name))


def policy_for(host: str, extra_names: tuple[str, ...] = (), token: str | None = None) -> Policy:
    """The names a server listening on `host` is reached by: the loopback ones, the address
    itself, the names the user adds (a DNS name, a proxy's), and when it listens on every
    address also the machine's own names and any IP literal."""
    names = {*LOOPBACK_NAMES, host.lower(), *(name.lower() for name in extra_names)}
    wildcard = host in WILDCARDS
    if wildcard:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return Policy(frozenset(names - {""}), wildcard, token)


def foreign_origin(headers: Headers, host: tuple[str, int], scheme: str) -> bool:
    """Whether the request's Origin is another origin than the one it was sent to."""
    origin = headers.get("origin")
    if origin is None:
        return False  # not sent by a browser on another page (curl, scripts, same-origin GETs)
    parts = urlsplit(origin)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return True
    return origin == "null" or parts.scheme != scheme or ((parts.hostname or "").lower(), port) != host


def cross_site(scope: Scope, headers: Headers, host: tuple[str, int]) -> str | None:
    """Why a request comes from another site, if it does (a 403's message)."""
    scheme = scope.get("scheme", "http")
    site = headers.get("sec-fetch-site", "same-origin")
    if scope["method"] not in SAFE_METHODS:
        if foreign_origin(headers, host, scheme):
            return f"cross-origin request refused (Origin {headers.get('origin')!r} is not this server)"
        if site not in ("same-origin", "none"):
            return f"cross-site request refused (Sec-Fetch-Site: {site})"
    elif site in ("cross-site", "same-site") and headers.get("sec-fetch-mode") != "navigate":
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    return None


def given_token(scope: Scope, headers: Headers) -> str | None:
    """The token a request carries: a bearer header or the page's cookie."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header carries no token
        return None
    return cookie[COOKIE].value if COOKIE in cookie else None


def page_login(scope: Scope, token: str) -> RedirectResponse | None:
    """`GET /?token=TOKEN` (the address printed at start): set the cookie, drop the token from
    the address bar, and show the page."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
    if scope["method"] != "GET" or scope["path"] != "/" or not values:
        return None
    if not secrets.compare_digest(values[0].encode(), token.encode()):
        return None
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


class Guard:
    """ASGI middleware applying a Policy to every HTTP request, before anything parses it."""

    def __init__(self, app: ASGIApp, policy: Policy):
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = self.check(scope)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> JSONResponse | RedirectResponse | None:
        """The response that refuses the request, or None to let it through."""
        headers = Headers(scope=scope)
        host = split_host(headers.get("host", ""), scope.get("scheme", "http"))
        if host is None or not self.policy.serves(host[0]):
            return JSONResponse({"error": f"unknown host {headers.get('host', '')!r}: this server answers only to "
                                          f"the names it is served under"}, status_code=403)
        refusal = cross_site(scope, headers, host)
        if refusal:
            return JSONResponse({"error": refusal}, status_code=403)
        token = self.policy.token
        if token is None:
            return None
        given = given_token(scope, headers)
        if given is not None and secrets.compare_digest(given.encode(), token.encode()):
            return None
        return page_login(scope, token) or JSONResponse(
            {"error": "this server needs its access token: open the address it printed at start "
                      "(…/?token=…) or send 'Authorization: Bearer TOKEN'"}, status_code=401)
