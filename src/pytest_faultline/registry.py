"""The scenario registry: named, parametrised fault recipes.

A scenario is a plain function ``(faultline, **params)``; a generator function may ``yield`` once
and its remainder runs at teardown. Parameters are checked against the function's signature
before the test runs. Built-ins are registered through the same decorator users call.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._record import FrozenRecord
from .errors import ScenarioError

__all__ = ["REGISTRY", "Param", "Registry", "Scenario", "scenario"]

REQUIRED: Any = inspect.Parameter.empty

ScenarioFunc = Callable[..., Any]


# Param and Scenario are written out, not @dataclass: the plugin imports this module at every
# pytest start (_record.py).
class Param(FrozenRecord):
    __slots__ = __match_args__ = ("name", "default", "annotation")
    name: str
    default: Any
    annotation: Any  # a resolved type, or None when it could not be resolved

    def __init__(self, name: str, default: Any, annotation: Any) -> None:
        self._set(name, default, annotation)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def render(self) -> str:
        text = self.name
        if self.annotation is not None:
            text += f": {describe_type(self.annotation)}"
        if not self.required:
            text += f" = {self.default!r}"
        return text


class Scenario(FrozenRecord):
    __slots__ = __match_args__ = ("name", "func", "params", "doc")
    name: str
    func: ScenarioFunc
    params: tuple[Param, ...]
    doc: str

    def __init__(self, name: str, func: ScenarioFunc, params: tuple[Param, ...], doc: str) -> None:
        self._set(name, func, params, doc)

    @property
    def origin(self) -> str:
        return f"{self.func.__module__}:{self.func.__qualname__}"

    def signature_text(self) -> str:
        return ", ".join(p.render() for p in self.params)

    def bind(self, given: dict[str, Any], *, where: str) -> dict[str, Any]:
        """Check ``given`` against the parameters and fill in defaults.

        ``where`` says where the values came from, for the error message.
        """
        __tracebackhide__ = True
        known = {p.name: p for p in self.params}
        accepted = self.signature_text() or "none"
        for key in given:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ScenarioError(
                    f"faultline scenario {self.name!r} has no parameter {key!r} "
                    f"(given {where}).{hint} Accepted parameters: {accepted}"
                )
        bound: dict[str, Any] = {}
        for param in self.params:
            if param.name in given:
                value = given[param.name]
                if param.annotation is not None and not check_type(value, param.annotation):
                    raise ScenarioError(
                        f"faultline scenario {self.name!r}: parameter {param.name!r} must be "
                        f"{describe_type(param.annotation)}, got {value!r} "
                        f"({type(value).__name__}) {where}. Accepted parameters: {accepted}"
                    )
                bound[param.name] = value
            elif param.required:
                raise ScenarioError(
                    f"faultline scenario {self.name!r} needs parameter {param.name!r} "
                    f"(missing {where}). Accepted parameters: {accepted}"
                )
            else:
                bound[param.name] = param.default
        return bound


def _first_line(doc: str | None) -> str:
    doc = inspect.cleandoc(doc or "")
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


def _params_of(func: ScenarioFunc, name: str) -> tuple[Param, ...]:
    sig = inspect.signature(func)
    items = list(sig.parameters.values())
    if not items or items[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise ScenarioError(
            f"scenario {name!r} ({func.__qualname__}) must take the faultline controller as its "
            f"first positional parameter: def {func.__name__}(faultline, **params)"
        )
    params = []
    for p in items[1:]:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ScenarioError(
                f"scenario {name!r} ({func.__qualname__}) must name every parameter; "
                f"*args and **kwargs cannot be checked"
            )
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ScenarioError(
                f"scenario {name!r}: parameter {p.name!r} must be passable by keyword"
            )
        params.append(Param(p.name, p.default, _resolve_annotation(func, p.annotation)))
    return tuple(params)


def _resolve_annotation(func: ScenarioFunc, annotation: Any) -> Any:
    # One parameter at a time: the controller's annotation is often only imported under
    # TYPE_CHECKING, and must not cost the other parameters their checks.
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        try:
            return eval(annotation, getattr(func, "__globals__", {}), {})
        except Exception:
            return None
    return annotation


class Registry:
    """Scenarios by name. One process-wide instance, :data:`REGISTRY`."""

    def __init__(self) -> None:
        self._scenarios: dict[str, Scenario] = {}

    def add(self, name: str, func: ScenarioFunc, *, doc: str | None = None) -> Scenario:
        if not isinstance(name, str) or not name.isidentifier():
            raise ScenarioError(f"scenario name must be an identifier, got {name!r}")
        new = Scenario(name, func, _params_of(func, name), _first_line(doc or func.__doc__))
        old = self._scenarios.get(name)
        # Re-importing the same conftest (pytester, importlib mode) registers the same function.
        if old is not None and old.origin != new.origin:
            raise ScenarioError(
                f"scenario {name!r} is already registered by {old.origin}; "
                f"{new.origin} must choose another name"
            )
        self._scenarios[name] = new
        return new

    def get(self, name: str) -> Scenario:
        __tracebackhide__ = True
        try:
            return self._scenarios[name]
        except KeyError:
            pass
        close = difflib.get_close_matches(str(name), self._scenarios, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ScenarioError(
            f"unknown faultline scenario {name!r}.{hint} Known scenarios: "
            f"{', '.join(sorted(self._scenarios))}. Run 'pytest --faultline-list' for their "
            f"parameters"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._scenarios

    def __iter__(self) -> Iterator[Scenario]:
        return iter(sorted(self._scenarios.values(), key=lambda s: s.name))

    def names(self) -> list[str]:
        return sorted(self._scenarios)


REGISTRY = Registry()


def scenario(
    name: str | None = None, *, doc: str | None = None
) -> Callable[[ScenarioFunc], ScenarioFunc]:
    """Register the decorated function ``(faultline, **params)`` as a scenario.

    Use it in a conftest or a plugin; the marker ``@pytest.mark.faultline(name, **params)`` and
    ``--faultline=name`` then apply it. The function's first docstring line is its summary in
    ``pytest --faultline-list``.
    """

    def decorate(func: ScenarioFunc) -> ScenarioFunc:
        REGISTRY.add(name or func.__name__, func, doc=doc)
        return func

    return decorate


# ---------------------------------------------------------------------------------------------
# Parameter type checks: enough of typing for scenario parameters (scalars, optionals, literals,
# sequences). Anything richer is accepted unchecked.


def check_type(value: Any, tp: Any) -> bool:
    if tp is Any or tp is object:
        return True
    if tp is None or tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(check_type(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(check_type, value, args))
        item = args[0] if args else Any
        return all(check_type(v, item) for v in value)
    if origin is not None and isinstance(origin, type):
        return isinstance(value, origin)
    if isinstance(tp, type):
        return isinstance(value, tp)
    if tp is Callable or origin is Callable:
        return callable(value)
    return True


def describe_type(tp: Any) -> str:
    if tp is type(None) or tp is None:
        return "None"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(describe_type(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is not None:
        inner = ", ".join(describe_type(a) for a in args if a is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))
