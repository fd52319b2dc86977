"""The ``http_client`` built-in tool: HTTP requests to hosts the node allows, with caps."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from caxton.errors import InvalidArgument, ToolError
from caxton.tools.tool import Tool

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "minLength": 1, "description": "http(s) URL"},
        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": "string", "description": "raw request body"},
        "json": {"description": "JSON request body (instead of body)"},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
    },
    "required": ["url"],
    "additionalProperties": False,
}


class HostAllowlist:
    """Which hosts ``http_client`` may reach.

    Entries: ``example.com`` (that host, any port), ``example.com:8080`` (that host and port),
    ``*.example.com`` (any subdomain), ``127.0.0.1`` (IP literals the same way). Matching is
    case-insensitive. An empty allowlist refuses everything.

    Args:
        entries: The node's allowed hosts.

    Raises:
        InvalidArgument: An entry is empty or has a non-numeric port.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries: tuple[str, ...] = tuple(e.strip().lower() for e in entries)
        for e in self.entries:
            host, _, port = e.partition(":")
            if not host or (e.count(":") == 1 and not port.isdigit()):
                raise InvalidArgument(f"http_client allowlist entry {e!r} is not host[:port]")

    def allows(self, host: str, port: int) -> bool:
        """Return whether ``host:port`` is allowed.

        Args:
            host: Lower-case host name or IP literal.
            port: The effective port.

        Returns:
            Whether an entry matches.
        """
        host = host.lower()
        for entry in self.entries:
            ehost, eport = entry, ""
            if entry.count(":") == 1:
                ehost, eport = entry.split(":")
            if eport and int(eport) != port:
                continue
            if ehost.startswith("*."):
                if host.endswith(ehost[1:]) and host != ehost[2:]:
                    return True
            elif ehost == host:
                return True
        return False


class HttpClientTool:
    """The ``http_client`` tool.

    Args:
        allowed_hosts: The node's allowlist (see :class:`HostAllowlist`).
        max_response_bytes: Responses larger than this are refused (default 1 MiB).
        default_timeout: Seconds per request unless the call asks for less.
    """

    name = "http_client"

    def __init__(self, allowed_hosts: Iterable[str] = (), *,
                 max_response_bytes: int = 1024 * 1024, default_timeout: float = 10.0) -> None:
        self.allowlist = HostAllowlist(allowed_hosts)
        self.max_response_bytes = max_response_bytes
        self.default_timeout = default_timeout
        self._client: httpx.AsyncClient | None = None  # made on the I/O loop at first use

    def close(self) -> None:
        """Forget the connection pool (its loop closes the sockets)."""
        self._client = None

    def tool(self) -> Tool:
        """Return the registrable :class:`Tool`."""
        return Tool(
            name=self.name,
            description=(
                "Make an HTTP request to an allowed host. Returns status, headers and body "
                "(parsed as json when the response is JSON). Redirects are not followed."
            ),
            parameters=PARAMETERS,
            func=self.__call__,
        )

    async def __call__(self, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Perform one request (a coroutine: it runs on the node's I/O loop).

        Args:
            args: Validated arguments (``url``, ``method``, ``headers``, ``body``/``json``,
                ``timeout``).
            timeout: Seconds the caller waits; the request never takes longer.

        Returns:
            ``{"status", "url", "headers", "body", "bytes", "elapsed_ms"}`` plus ``"json"``
            for JSON responses.

        Raises:
            ToolError: Refused host or scheme, transport error, timeout, or response too large.
        """
        url = str(args["url"])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ToolError(f"http_client only fetches http(s) URLs with a host, got {url!r}")
        host = parts.hostname.lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ToolError(f"http_client: invalid port in {url!r}") from None
        if not self.allowlist.allows(host, port):
            raise ToolError(
                f"http_client refused {url}: host {host!r} is not on this node's allowlist "
                f"({', '.join(self.allowlist.entries) or 'empty'}); to allow it, add "
                f"{host!r} (or '{host}:{port}') to http_client.allowed_hosts in the node's "
                f"caxton.yaml",
                details=[{"tool": self.name, "reason": "host_not_allowed", "host": host}],
            )
        if "body" in args and "json" in args:
            raise ToolError("http_client: give either body or json, not both")
        limit = min(timeout, self.default_timeout, float(args.get("timeout") or timeout))
        content: bytes | None = None
        headers = dict(args.get("headers") or {})
        if "json" in args:
            content = json.dumps(args["json"]).encode()
            headers.setdefault("content-type", "application/json")
        elif "body" in args:
            content = str(args["body"]).encode()
        started = time.perf_counter()
        if self._client is None:
            # trust_env=False: proxy variables must never reroute agent traffic past the
            # allowlist.
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        try:
            async with self._client.stream(args.get("method", "GET"), url, headers=headers,
                                           content=content, timeout=limit) as resp:
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise self._too_large(host, int(declared))
                buf = bytearray()
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if len(buf) > self.max_response_bytes:
                        raise self._too_large(host, len(buf))
        except httpx.TimeoutException:
            raise ToolError(f"http_client: {url} did not answer within {limit:g}s",
                            details=[{"tool": self.name, "reason": "timeout"}]) from None
        except httpx.HTTPError as exc:
            raise ToolError(f"http_client: request to {url} failed: {exc}") from None
        text = bytes(buf).decode(resp.encoding or "utf-8", errors="replace")
        result: dict[str, Any] = {
            "status": resp.status_code,
            "url": url,
            "headers": dict(resp.headers),
            "body": text,
            "bytes": len(buf),
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if "json" in resp.headers.get("content-type", ""):
            try:
                result["json"] = json.loads(text)
            except json.JSONDecodeError:
                pass
        return result

    def _too_large(self, host: str, size: int) -> ToolError:
        return ToolError(
            f"http_client: response from {host!r} is larger than the "
            f"{self.max_response_bytes}-byte cap (at least {size} bytes); raise the node's "
            f"http_client.max_response_bytes if this is expected",
            details=[{"tool": self.name, "reason": "response_too_large", "host": host}],
        )


__all__ = ["HostAllowlist", "HttpClientTool"]
