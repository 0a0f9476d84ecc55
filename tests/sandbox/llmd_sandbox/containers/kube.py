"""A read-only Kubernetes API client for the routers: GET JSON with the pod's token, trusting the sandbox CA."""

import ssl
import urllib.parse

import aiohttp

from .spec import ContainerSpec


class KubeReader:
    def __init__(self, spec: ContainerSpec):
        self.base = spec.api_server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {spec.token}"} if spec.token else {}
        self.ssl = ssl.create_default_context(cafile=spec.ca_file) if spec.ca_file else None
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **query) -> dict | None:
        """The object at `path`, or None when the API server says 404 (missing object or unknown API)."""
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        async with self.session.get(url, headers=self.headers, ssl=self.ssl) as response:
            if response.status == 404:
                return None
            response.raise_for_status()
            return await response.json()
