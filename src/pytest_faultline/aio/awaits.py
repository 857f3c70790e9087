"""``preempt="awaits"``: every ``await`` in the named modules becomes a scheduling point.

An ``await`` that completes without suspending (a coroutine that returns at once, a free lock)
never lets another task run, so a race window made only of such awaits stays shut under plain
asyncio. Tracing cannot make a coroutine suspend, so the coroutine functions of the named modules
are recompiled from their source with each ``await X`` turned into
``(await __faultline_yield__()) or (await X)``: the task first goes back to the ready queue
(where the strategy may run another task), then evaluates and awaits ``X`` as before. Only the
functions' ``__code__`` is swapped (identity, defaults, closures and decorators are kept), for
the exploration, and restored after it. Outside a controlled run the yield is a no-op.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from collections.abc import Iterator
from typing import Any

from .points import yield_point

__all__ = ["YIELD_NAME", "AwaitPoints"]

YIELD_NAME = "__faultline_yield__"


class _Rewrite(ast.NodeTransformer):
    def visit_Await(self, node: ast.Await) -> ast.AST:
        self.generic_visit(node)
        point = ast.Await(ast.Call(ast.Name(YIELD_NAME, ast.Load()), [], []))
        return ast.BoolOp(ast.Or(), [point, node])

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return node  # a sync function nested in a coroutine function has no awaits of its own

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return node


def _coroutine_functions(module: types.ModuleType) -> Iterator[types.FunctionType]:
    seen: set[int] = set()
    stack: list[Any] = list(vars(module).values())
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, type) and obj.__module__ == module.__name__:
            stack.extend(vars(obj).values())
            continue
        if isinstance(obj, property):
            stack.extend(f for f in (obj.fget, obj.fset, obj.fdel) if f is not None)
            continue
        func = inspect.unwrap(obj) if callable(obj) else obj
        if (
            isinstance(func, types.FunctionType)
            and func.__module__ == module.__name__
            and inspect.iscoroutinefunction(func)
        ):
            yield func


def _rewritten(func: types.FunctionType) -> types.CodeType | None:
    """``func``'s code with a scheduling point before every await (None if it cannot be)."""
    try:
        lines, first = inspect.getsourcelines(func)
    except (OSError, TypeError):
        return None
    source = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if not tree.body or not isinstance(tree.body[0], ast.AsyncFunctionDef):
        return None
    fdef = tree.body[0]
    fdef.decorator_list = []
    fdef.body = [_Rewrite().visit(stmt) for stmt in fdef.body]
    freevars = func.__code__.co_freevars
    if freevars:  # recreate the closure cells so the free variables compile as free
        outer = ast.parse(f"def __faultline_outer__():\n    {' = '.join(freevars)} = None")
        wrapper = outer.body[0]
        assert isinstance(wrapper, ast.FunctionDef)
        wrapper.body += [fdef, ast.Return(ast.Name(fdef.name, ast.Load()))]
        tree.body = [wrapper]
    ast.increment_lineno(tree, first - 1)
    ast.fix_missing_locations(tree)
    try:
        code = compile(tree, func.__code__.co_filename, "exec")
    except SyntaxError:
        return None
    found = _find_code(code, func.__code__.co_name)
    if found is None or found.co_freevars != freevars:
        return None
    return found.replace(co_qualname=func.__code__.co_qualname)
    return found


def _find_code(code: types.CodeType, name: str) -> types.CodeType | None:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_name == name and const.co_flags & inspect.CO_COROUTINE:
                return const
            inner = _find_code(const, name)
            if inner is not None:
                return inner
    return None


class AwaitPoints:
    """The coroutine functions of ``modules`` with a scheduling point at every await."""

    def __init__(self, modules: list[types.ModuleType]) -> None:
        self.modules = modules
        self._saved: list[tuple[types.FunctionType, types.CodeType]] = []
        self._globals: list[tuple[dict[str, Any], bool, Any]] = []
        self.skipped: list[str] = []

    def install(self) -> None:
        for module in self.modules:
            namespace = vars(module)
            self._globals.append((namespace, YIELD_NAME in namespace, namespace.get(YIELD_NAME)))
            namespace[YIELD_NAME] = yield_point
            for func in _coroutine_functions(module):
                code = _rewritten(func)
                if code is None:
                    self.skipped.append(func.__qualname__)
                    continue
                self._saved.append((func, func.__code__))
                func.__code__ = code

    def uninstall(self) -> None:
        while self._saved:
            func, code = self._saved.pop()
            func.__code__ = code
        while self._globals:
            namespace, had, value = self._globals.pop()
            if had:
                namespace[YIELD_NAME] = value
            else:
                namespace.pop(YIELD_NAME, None)
