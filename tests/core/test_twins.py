"""Sync and async layers that must stay twins: for speed each policy below has two hand-written
bodies (a shared helper would cost a call per decision on the hot path), so this compares their
syntax trees after taking ``async``/``await`` and the async names away.  A fix made to one twin
and not the other fails here.  Policies whose two executors differ by design (the retry's sync
fast path, the hard timeout's thread, the hedge's tasks) share their decisions through sans-I/O
methods instead (``Retry.decide``/``_after_failure``, ``BreakerMachine``)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

import pytest

from buttress.chaos.client import AsyncClient, AsyncProxyHandle, Client, ProxyHandle
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.limits import AdaptiveLimit
from buttress.policies.ratelimit import RateLimiter
from buttress.policies.shed import LoadShedder
from buttress.wrapping import Chains

# async name -> sync name
ASYNC_NAMES = {
    "async_layer": "sync_layer",
    "asleep": "sleep",
    "sleep_async": "sleep",
    "invoke_async": "invoke_sync",
    "AsyncNext": "SyncNext",
    "_async_guarded": "_sync_guarded",
    "asyn": "sync",  # Chains' async chain
    "AsyncClient": "Client",
    "AsyncProxyHandle": "ProxyHandle",
    "AsyncIterator": "Iterator",
    "asynccontextmanager": "contextmanager",
}


class _Normalise(ast.NodeTransformer):
    def visit_Await(self, node: ast.Await) -> Any:
        return self.visit(node.value)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> Any:
        sync = ast.FunctionDef(**{f: getattr(node, f) for f in node._fields})
        return self.visit_FunctionDef(ast.copy_location(sync, node))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node.name = self._name(node.name)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            node.body = body[1:]  # docstrings and comments may differ
        return self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        # Callable[..., Awaitable[Any]] is Callable[..., Any]'s twin
        if isinstance(node.value, ast.Name) and node.value.id == "Awaitable":
            return self.visit(node.slice)
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> Any:
        node.id = self._name(node.id)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        node.attr = self._name(node.attr)
        return self.generic_visit(node)

    @staticmethod
    def _name(name: str) -> str:
        return ASYNC_NAMES.get(name, name.removesuffix("_async"))


def tree(fn: Any) -> str:
    node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    return ast.dump(_Normalise().visit(node), include_attributes=False)


TWINS = [Bulkhead, RateLimiter, AdaptiveLimit, LoadShedder, CircuitBreaker]


@pytest.mark.parametrize("cls", TWINS, ids=[c.__name__ for c in TWINS])
def test_the_async_layer_is_the_sync_one_with_awaits(cls: type[Any]) -> None:
    assert tree(cls.sync_layer) == tree(cls.async_layer)


# Twin helpers outside the layers: the breaker's locked path, the pipeline's observed call.
METHOD_TWINS = [
    (CircuitBreaker._sync_guarded, CircuitBreaker._async_guarded),
    (Chains.observed, Chains.observed_async),
]


@pytest.mark.parametrize("pair", METHOD_TWINS, ids=[s.__qualname__ for s, _ in METHOD_TWINS])
def test_the_async_helper_is_the_sync_one_with_awaits(pair: tuple[Any, Any]) -> None:
    sync, asyn = pair
    assert tree(sync) == tree(asyn)


# The fault proxy's clients: two classes side by side, every shared method the same code.
CLASS_TWINS = [(Client, AsyncClient), (ProxyHandle, AsyncProxyHandle)]


@pytest.mark.parametrize("pair", CLASS_TWINS, ids=[a.__name__ for _, a in CLASS_TWINS])
def test_the_async_class_is_the_sync_one_with_awaits(pair: tuple[type[Any], type[Any]]) -> None:
    sync, asyn = pair
    shared = [
        name
        for name, member in vars(sync).items()
        if inspect.isfunction(member) and inspect.isfunction(vars(asyn).get(name))
    ]
    assert len(shared) >= 7, shared  # the comparison itself found the methods
    for name in shared:
        assert tree(vars(sync)[name]) == tree(vars(asyn)[name]), name


def test_the_check_sees_a_drift() -> None:
    def sync_layer(x: int) -> int:
        return x + 1

    async def async_layer(x: int) -> int:
        return x + 2

    assert tree(sync_layer) != tree(async_layer)

    async def async_twin(x: int) -> int:
        return x + 1

    assert tree(sync_layer).replace("'sync_layer'", "'async_twin'") == tree(async_twin)
