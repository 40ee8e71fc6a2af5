"""The sync and async transports are twins written by hand: their bodies must stay the same but for
``await``, ``async def`` and the async names of httpx and Buttress.  This compares their syntax
trees after normalising those away, so a fix made to one twin and not the other fails here."""

from __future__ import annotations

import ast
import inspect
import textwrap

import buttress.integrations.http as http

# async name -> sync name, for every name the async twin may use where the sync one differs
ASYNC_NAMES = {
    "AsyncResilientTransport": "ResilientTransport",
    "AsyncBaseTransport": "BaseTransport",
    "AsyncHTTPTransport": "HTTPTransport",
    "handle_async_request": "handle_request",
    "call_async": "call",
    "aread": "read",
    "aclose": "close",
    "aiter_raw": "iter_raw",
    "start_async": "start",
    "stop_async": "stop",
    "cancel_safe": "_as_is",
}


class _Normalise(ast.NodeTransformer):
    def visit_Await(self, node: ast.Await) -> ast.AST:
        return self.visit(node.value)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        sync = ast.FunctionDef(**{f: getattr(node, f) for f in node._fields})
        return self.visit_FunctionDef(sync)

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        node.is_async = 0  # `async for` in a comprehension: the twin's `for`
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = ASYNC_NAMES.get(node.name, node.name)
        return self._strip_docstring(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = ASYNC_NAMES.get(node.name, node.name)
        return self._strip_docstring(node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        node.attr = ASYNC_NAMES.get(node.attr, node.attr)
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = ASYNC_NAMES.get(node.id, node.id)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        # The error text names the flavour ("a sync ..." / "an async ..."): not code.
        if isinstance(node.value, str):
            return ast.Constant("<text>")
        return node

    def _strip_docstring(self, node: ast.FunctionDef | ast.ClassDef) -> ast.AST:
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:]
        return self.generic_visit(node)


def _tree(cls: type) -> str:
    node = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    return ast.dump(_Normalise().visit(node), include_attributes=False)


def test_the_async_transport_is_the_sync_one_with_awaits() -> None:
    assert _tree(http.ResilientTransport) == _tree(http.AsyncResilientTransport)


def test_the_check_sees_a_drift() -> None:
    """The normalisation does not hide real differences."""

    class Sync:
        def f(self) -> int:
            return self.g(1)  # type: ignore[attr-defined,no-any-return]

    class AsyncSync:
        async def f(self) -> int:
            return await self.g(2)  # type: ignore[attr-defined,no-any-return]

    ASYNC_NAMES["AsyncSync"] = "Sync"
    try:
        assert _tree(Sync) != _tree(AsyncSync)
    finally:
        del ASYNC_NAMES["AsyncSync"]
