"""Bytecode-level preemption: a switch may happen between two bytecodes of a line in chosen
modules, so races inside one line (``self.n += 1`` from two threads) are found.

Not every bytecode is a scheduling point: one that touches only its own frame (a local
variable, a constant, the value stack, a jump) commutes with everything another thread does,
so a switch before it is the same as a switch after it. Every other bytecode (attribute,
subscript, global and closure access, calls, arithmetic and truth tests on objects) is a point,
which makes the search exhaustive at bytecode granularity with far fewer decisions. Which
offsets of a code object are points is computed once per process (``point_table``).

``sys.monitoring`` INSTRUCTION events on Python 3.12+, enabled only on the code objects of the
named modules (every other location costs nothing; a local-only bytecode is disabled after its
first event); ``sys.settrace`` with ``f_trace_opcodes`` before, installed per managed thread.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Iterator
from types import CodeType, FrameType, FunctionType, ModuleType
from typing import Any

from .lines import USE_MONITORING, claim_tool, release_tool
from .runtime import current

__all__ = ["LOCAL_OPS", "BytecodeHook", "module_code", "point_table"]

# Bytecodes that read or write only the executing frame (locals, constants, the value stack,
# control flow) on 3.10-3.13: never a scheduling point. Names absent on a version are harmless.
LOCAL_OPS = frozenset(
    {
        "NOP",
        "RESUME",
        "CACHE",
        "EXTENDED_ARG",
        "LOAD_FAST",
        "LOAD_FAST_CHECK",
        "LOAD_FAST_AND_CLEAR",
        "LOAD_FAST_LOAD_FAST",
        "STORE_FAST",
        "STORE_FAST_LOAD_FAST",
        "STORE_FAST_STORE_FAST",
        "DELETE_FAST",
        "LOAD_CONST",
        "RETURN_CONST",
        "RETURN_VALUE",
        "POP_TOP",
        "PUSH_NULL",
        "COPY",
        "SWAP",
        "ROT_TWO",
        "ROT_THREE",
        "ROT_FOUR",
        "ROT_N",
        "DUP_TOP",
        "DUP_TOP_TWO",
        "KW_NAMES",
        "PRECALL",
        "MAKE_CELL",
        "COPY_FREE_VARS",
        "LOAD_CLOSURE",
        "JUMP",
        "JUMP_NO_INTERRUPT",
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "JUMP_ABSOLUTE",
        "END_FOR",
        "POP_BLOCK",
        "POP_EXCEPT",
        "PUSH_EXC_INFO",
        "RERAISE",
        "BUILD_TUPLE",
        "BUILD_LIST",
        "LIST_APPEND",
        "MAKE_FUNCTION",
        "SET_FUNCTION_ATTRIBUTE",
        "LOAD_ASSERTION_ERROR",
        "RETURN_GENERATOR",
        "GEN_START",
        "NOT_TAKEN",
        "POP_ITER",
    }
)

# code object -> {offset: (operation, site)} of its scheduling points; per process.
_TABLES: dict[CodeType, dict[int, tuple[str, str]]] = {}
# module name -> its code objects; per process.
_MODULE_CODE: dict[str, tuple[CodeType, ...]] = {}


def point_table(code: CodeType) -> dict[int, tuple[str, str]]:
    """The offsets of ``code`` where a switch may happen, each with the operation and the site
    the swimlane shows (``STORE_ATTR n``, ``counter.py:12``)."""
    table = _TABLES.get(code)
    if table is not None:
        return table
    import dis

    lines: dict[int, int] = {}
    for start, end, line in code.co_lines():
        if line is not None:
            for offset in range(start, end, 2):
                lines[offset] = line
    name = os.path.basename(code.co_filename)
    table = {}
    for ins in dis.get_instructions(code):
        if ins.opname in LOCAL_OPS:
            continue
        op = f"{ins.opname} {ins.argrepr}" if ins.argrepr else ins.opname
        table[ins.offset] = (op[:40], f"{name}:{lines.get(ins.offset, code.co_firstlineno)}")
    _TABLES[code] = table
    return table


def _nested(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _nested(const)


def _code_of(value: Any, seen: set[int]) -> Iterator[CodeType]:
    """Code objects reachable from a module attribute: functions, methods (also static, class
    and properties), decorated functions (``__wrapped__``), nested functions and lambdas."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, FunctionType):
        yield from _nested(value.__code__)
        wrapped = getattr(value, "__wrapped__", None)
        if wrapped is not None:
            yield from _code_of(wrapped, seen)
    elif isinstance(value, (staticmethod, classmethod)):
        yield from _code_of(value.__func__, seen)
    elif isinstance(value, property):
        for accessor in (value.fget, value.fset, value.fdel):
            if accessor is not None:
                yield from _code_of(accessor, seen)
    elif isinstance(value, type):
        for attr in vars(value).values():
            yield from _code_of(attr, seen)
    else:
        wrapped = getattr(value, "__wrapped__", None)  # functools.lru_cache and friends
        if isinstance(wrapped, FunctionType):
            yield from _code_of(wrapped, seen)


def module_code(names: Iterable[str]) -> tuple[CodeType, ...]:
    """The code objects defined in the modules ``names`` (imported here if needed)."""
    found: dict[CodeType, None] = {}
    for name in names:
        codes = _MODULE_CODE.get(name)
        if codes is None:
            module: ModuleType = importlib.import_module(name)
            files = {getattr(module, "__file__", None)} - {None}
            seen: set[int] = set()
            codes = tuple(
                code
                for value in list(vars(module).values())
                for code in _code_of(value, seen)
                if code.co_filename in files
            )
            _MODULE_CODE[name] = codes
        found.update(dict.fromkeys(codes))
    return tuple(found)


class BytecodeHook:
    """Makes the shared-state bytecodes of ``modules`` scheduling points for managed threads
    during one run (the same interface as :class:`~.lines.LineHook`)."""

    def __init__(self, modules: Iterable[str], files: frozenset[str]) -> None:
        self.codes = module_code(modules)
        self.files = files
        # Tables are made when a code object first runs, not here: a module's every function
        # through dis cost tens of milliseconds before the first run of a process.
        self._tool: int | None = None

    # -- sys.monitoring (3.12+): local events on the modules' code, filtered by thread ----------

    def install(self) -> None:
        if not USE_MONITORING or self._tool is not None:  # installed already (an exploration's)
            return
        mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        self._tool = claim_tool("bytecode")
        mon.restart_events()  # local-only bytecodes disabled in an earlier exploration report again
        mon.register_callback(self._tool, mon.events.INSTRUCTION, self._on_instruction)
        for code in self.codes:
            mon.set_local_events(self._tool, code, mon.events.INSTRUCTION)

    def uninstall(self) -> None:
        if self._tool is None:
            return
        mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        for code in self.codes:
            mon.set_local_events(self._tool, code, 0)
        mon.register_callback(self._tool, mon.events.INSTRUCTION, None)
        release_tool(self._tool)
        self._tool = None

    def _on_instruction(self, code: CodeType, offset: int) -> Any:
        table = _TABLES.get(code)
        if table is None:
            table = point_table(code)
        entry = table.get(offset)
        if entry is None:
            return sys.monitoring.DISABLE  # type: ignore[attr-defined,unused-ignore]
        ctx = current()
        if ctx is not None:
            ctx[0].point(ctx[1], entry[0], None, site=entry[1])
        return None

    # -- sys.settrace (3.10, 3.11): per thread, opcode events in the modules' frames -----------

    def thread_enter(self) -> None:
        if USE_MONITORING:
            return
        sys.settrace(self._trace_call)

    def thread_exit(self) -> None:
        if USE_MONITORING:
            return
        sys.settrace(None)

    def _trace_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if code.co_filename not in self.files:
            return None
        table = point_table(code)
        frame.f_trace_lines = False
        frame.f_trace_opcodes = True

        def trace_opcode(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                entry = table.get(frame.f_lasti)
                if entry is not None:
                    ctx = current()
                    if ctx is not None:
                        ctx[0].point(ctx[1], entry[0], None, site=entry[1])
            return trace_opcode

        return trace_opcode
