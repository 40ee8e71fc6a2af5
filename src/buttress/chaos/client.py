"""A client for the proxy's control API (and toxiproxy's: the same wire format), sync and async.

::

    from buttress.chaos.client import Client

    with Client("http://127.0.0.1:8474") as api:
        db = api.create("db", upstream="127.0.0.1:5432", listen="127.0.0.1:15432")
        with db.toxic("latency", latency=200, jitter=50):
            ...                      # every connection through :15432 is 200 +- 50 ms slower
        with db.down():
            ...                      # the proxy refuses connections
    # the toxic is removed and the proxy re-enabled even if the block raised

:class:`AsyncClient` is the same with ``await`` and ``async with``.  The two are twins kept side by
side in this module and tested against the same cases.  Needs ``buttress[chaos]`` (httpx).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from buttress.errors import ButtressError, MissingExtra

try:
    import httpx
except ImportError as e:  # pragma: no cover - httpx is in the chaos extra
    raise MissingExtra("the proxy client", "chaos", "httpx") from e

__all__ = ["AsyncClient", "AsyncProxyHandle", "Client", "ProxyAPIError", "ProxyHandle"]

DEFAULT_URL = "http://127.0.0.1:8474"


class ProxyAPIError(ButtressError):
    """The control API answered with an error: ``status`` and the server's ``message``."""

    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        super().__init__(f"{method} {path}: {status} {message}".strip())


def _check(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        try:
            msg = resp.json().get("error") or resp.text
        except ValueError:
            msg = resp.text
        raise ProxyAPIError(resp.status_code, str(msg), resp.request.method, resp.request.url.path)
    if resp.status_code == 204 or not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _toxic_body(
    type: str, name: str | None, stream: str, toxicity: float, attributes: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type,
        "stream": stream,
        "toxicity": toxicity,
        "attributes": attributes,
    }
    if name is not None:
        body["name"] = name
    return body


def _toxic_update_body(toxicity: float | None, attributes: dict[str, Any]) -> dict[str, Any]:
    # A toxicity left out keeps the toxic's current one (the server merges the update).
    body: dict[str, Any] = {"attributes": attributes}
    if toxicity is not None:
        body["toxicity"] = toxicity
    return body


def _unreachable(url: str, error: httpx.HTTPError) -> ProxyAPIError:
    # Status 0: no answer at all, as opposed to an error the server answered with.
    return ProxyAPIError(0, f"cannot reach the control API at {url}: {error}")


def _version_of(data: Any) -> str:
    # Ours (and recent toxiproxy) answer {"version": ...}; older toxiproxy, a bare string.
    return str(data["version"]) if isinstance(data, dict) else str(data)


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Info:
    name: str
    listen: str
    upstream: str
    enabled: bool

    def _load(self, data: dict[str, Any]) -> None:
        self.name = data["name"]
        self.listen = data["listen"]
        self.upstream = data["upstream"]
        self.enabled = bool(data.get("enabled", True))

    @property
    def host(self) -> str:
        """The host the proxy listens on."""
        return _split(self.listen)[0]

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return _split(self.listen)[1]

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<{type(self).__name__} {self.name} {self.listen} -> {self.upstream} {state}>"


# -- sync ----------------------------------------------------------------------------------------


class ProxyHandle(_Info):
    """One proxy, as seen through a :class:`Client`."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.client = client
        self._load(data)

    def refresh(self) -> ProxyHandle:
        self._load(self.client._req("GET", f"/proxies/{self.name}"))
        return self

    def toxics(self) -> list[dict[str, Any]]:
        """The proxy's toxics, in the order they apply."""
        out: list[dict[str, Any]] = self.client._req("GET", f"/proxies/{self.name}/toxics")
        return out

    def add_toxic(
        self,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> dict[str, Any]:
        """Add a toxic (see the catalogue in :mod:`buttress.chaos.proxy.toxics`); returns it."""
        body = _toxic_body(type, name, stream, toxicity, attributes)
        out: dict[str, Any] = self.client._req("POST", f"/proxies/{self.name}/toxics", body)
        return out

    def update_toxic(
        self, name: str, *, toxicity: float | None = None, **attributes: Any
    ) -> dict[str, Any]:
        body = _toxic_update_body(toxicity, attributes)
        out: dict[str, Any] = self.client._req("POST", f"/proxies/{self.name}/toxics/{name}", body)
        return out

    def remove_toxic(self, name: str) -> None:
        self.client._req("DELETE", f"/proxies/{self.name}/toxics/{name}")

    def _set_enabled(self, enabled: bool) -> None:
        self._load(self.client._req("POST", f"/proxies/{self.name}", {"enabled": enabled}))

    def enable(self) -> None:
        self._set_enabled(True)

    def disable(self) -> None:
        """Stop listening and drop every connection."""
        self._set_enabled(False)

    def destroy(self) -> None:
        self.client._req("DELETE", f"/proxies/{self.name}")

    @contextlib.contextmanager
    def toxic(
        self,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> Iterator[dict[str, Any]]:
        """Apply a toxic for the block; it is removed on exit, whatever happened inside."""
        made = self.add_toxic(type, name=name, stream=stream, toxicity=toxicity, **attributes)
        try:
            yield made
        finally:
            with contextlib.suppress(ProxyAPIError):
                self.remove_toxic(made["name"])

    @contextlib.contextmanager
    def down(self) -> Iterator[ProxyHandle]:
        """Disable the proxy for the block; re-enabled on exit, whatever happened inside."""
        self.disable()
        try:
            yield self
        finally:
            self.enable()


class Client:
    """Sync client.  ``url`` defaults to toxiproxy's ``http://127.0.0.1:8474``; ``timeout`` in
    seconds."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def _req(self, method: str, path: str, body: Any = None) -> Any:
        try:
            resp = self._http.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise _unreachable(self.url, e) from None
        return _check(resp)

    def version(self) -> str:
        data = self._req("GET", "/version")
        return _version_of(data)

    def proxies(self) -> dict[str, ProxyHandle]:
        data = self._req("GET", "/proxies")
        return {k: ProxyHandle(self, v) for k, v in data.items()}

    def get(self, name: str) -> ProxyHandle:
        return ProxyHandle(self, self._req("GET", f"/proxies/{name}"))

    def create(
        self, name: str, upstream: str, *, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> ProxyHandle:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return ProxyHandle(self, self._req("POST", "/proxies", body))

    def populate(self, proxies: list[dict[str, Any]]) -> list[ProxyHandle]:
        data = self._req("POST", "/populate", proxies)
        return [ProxyHandle(self, p) for p in data["proxies"]]

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._req("POST", "/reset")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- async (the twin of the above) -------------------------------------------


class AsyncProxyHandle(_Info):
    """One proxy, as seen through an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient, data: dict[str, Any]) -> None:
        self.client = client
        self._load(data)

    async def refresh(self) -> AsyncProxyHandle:
        self._load(await self.client._req("GET", f"/proxies/{self.name}"))
        return self

    async def toxics(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = await self.client._req("GET", f"/proxies/{self.name}/toxics")
        return out

    async def add_toxic(
        self,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> dict[str, Any]:
        body = _toxic_body(type, name, stream, toxicity, attributes)
        out: dict[str, Any] = await self.client._req("POST", f"/proxies/{self.name}/toxics", body)
        return out

    async def update_toxic(
        self, name: str, *, toxicity: float | None = None, **attributes: Any
    ) -> dict[str, Any]:
        body = _toxic_update_body(toxicity, attributes)
        out: dict[str, Any] = await self.client._req(
            "POST", f"/proxies/{self.name}/toxics/{name}", body
        )
        return out

    async def remove_toxic(self, name: str) -> None:
        await self.client._req("DELETE", f"/proxies/{self.name}/toxics/{name}")

    async def _set_enabled(self, enabled: bool) -> None:
        self._load(await self.client._req("POST", f"/proxies/{self.name}", {"enabled": enabled}))

    async def enable(self) -> None:
        await self._set_enabled(True)

    async def disable(self) -> None:
        await self._set_enabled(False)

    async def destroy(self) -> None:
        await self.client._req("DELETE", f"/proxies/{self.name}")

    @contextlib.asynccontextmanager
    async def toxic(
        self,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """Apply a toxic for the block; it is removed on exit, whatever happened inside."""
        made = await self.add_toxic(type, name=name, stream=stream, toxicity=toxicity, **attributes)
        try:
            yield made
        finally:
            with contextlib.suppress(ProxyAPIError):
                await self.remove_toxic(made["name"])

    @contextlib.asynccontextmanager
    async def down(self) -> AsyncIterator[AsyncProxyHandle]:
        """Disable the proxy for the block; re-enabled on exit, whatever happened inside."""
        await self.disable()
        try:
            yield self
        finally:
            await self.enable()


class AsyncClient:
    """Async client; the twin of :class:`Client`."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def _req(self, method: str, path: str, body: Any = None) -> Any:
        try:
            resp = await self._http.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise _unreachable(self.url, e) from None
        return _check(resp)

    async def version(self) -> str:
        data = await self._req("GET", "/version")
        return _version_of(data)

    async def proxies(self) -> dict[str, AsyncProxyHandle]:
        data = await self._req("GET", "/proxies")
        return {k: AsyncProxyHandle(self, v) for k, v in data.items()}

    async def get(self, name: str) -> AsyncProxyHandle:
        return AsyncProxyHandle(self, await self._req("GET", f"/proxies/{name}"))

    async def create(
        self, name: str, upstream: str, *, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> AsyncProxyHandle:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return AsyncProxyHandle(self, await self._req("POST", "/proxies", body))

    async def populate(self, proxies: list[dict[str, Any]]) -> list[AsyncProxyHandle]:
        data = await self._req("POST", "/populate", proxies)
        return [AsyncProxyHandle(self, p) for p in data["proxies"]]

    async def reset(self) -> None:
        await self._req("POST", "/reset")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
