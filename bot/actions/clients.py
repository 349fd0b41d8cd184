"""Pooled HTTP clients for actions that call other servers."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx


class LoopClients:
    """One pooled `httpx.AsyncClient` per event loop: a client's connections belong to the loop that opened them."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> httpx.AsyncClient:
        """The running loop's client, opened on first use."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = httpx.AsyncClient(**self._options)
        return client

    async def aclose(self) -> None:
        """Close the running loop's client; a later `get` opens a new one."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
