"""Reverse-proxying one HTTP request, streaming the answer through as it arrives (no buffering),
as Go's httputil.ReverseProxy and Envoy do for SSE."""

import asyncio

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

# Hop-by-hop headers (RFC 9110 7.6.1) and the ones aiohttp recomputes itself.
_NOT_FORWARDED = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                  "transfer-encoding", "upgrade", "content-length", "host"}


def client_session(pod_ip: str) -> aiohttp.ClientSession:
    """Connections leave from the pod's own IP, so upstream access logs show who called, as in a cluster.
    No total timeout: generations can be long; bytes pass through untouched (no decompression)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(pod_ip, 0)), auto_decompress=False,
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))


def forwarded_headers(request: web.Request, **extra) -> CIMultiDict:
    headers = CIMultiDict((key, value) for key, value in request.headers.items() if key.lower() not in _NOT_FORWARDED)
    for key, value in extra.items():
        headers[key] = value
    return headers


async def relay(request: web.Request, session: aiohttp.ClientSession, url: str, body: bytes, headers: CIMultiDict,
                response_headers: dict | None = None, timeout: float | None = None) -> web.StreamResponse:
    """Send the request upstream and stream its answer back.

    Raises aiohttp.ClientConnectorError when the upstream cannot be reached, and TimeoutError when it has
    not answered within `timeout` (the caller decides what its program answers then). A timeout after the
    answer started resets the client's connection, as Envoy does.
    """
    response = None
    try:
        async with asyncio.timeout(timeout):
            async with session.request(request.method, url, data=body, headers=headers,
                                       allow_redirects=False) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in _NOT_FORWARDED:
                        response.headers.add(key, value)
                response.headers.update(response_headers or {})
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                try:
                    await response.prepare(request)
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                    await response.write_eof()
                except ConnectionResetError:
                    pass  # the client went away before or during the answer: nothing left to send it to (Go's
                    # proxy aborts too); aiohttp then ends the request quietly (finish_response)
                return response
    except TimeoutError:
        if response is None:
            raise
        request.transport.close()
        return response
