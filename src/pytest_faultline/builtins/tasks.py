"""Built-in asyncio task scenarios."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..registry import scenario

if TYPE_CHECKING:
    from ..controller import Faultline


@scenario("task_interleaving")
def task_interleaving(
    faultline: Faultline,
    runs: int = 100,
    strategy: Literal["random", "pct", "dfs"] = "pct",
    depth: int = 3,
    max_preemptions: int | None = None,
    preempt: Literal["sync", "awaits"] = "sync",
    modules: list[str] | None = None,
) -> None:
    """Re-run an async def body under `runs` controlled task orders (create state in the body).

    The body runs on faultline's event loop: which ready task or callback runs next is a choice
    of the seed; every asyncio Lock, Event, Semaphore, Condition, Queue, stream read and drain
    is a point where another task may run, even when it would not block (with
    preempt="awaits": every await in `modules`). Loop time is virtual: sleeps and timeouts
    take no real time. Threads the body starts (asyncio.to_thread, run_in_executor,
    Thread.start) run under the thread scheduler with the same seed, the loop a managed thread.
    The first failing order is shrunk, replayed and reported with its token; tasks that can
    never progress are a DeadlockError with the wait-for cycle.
    """
    from ..aio import install_task_interleaving
    from ..errors import ScenarioError
    from ..exploring import ExploreOptions

    options = ExploreOptions.build(
        where="faultline scenario 'task_interleaving'",
        error=ScenarioError,
        runs=runs,
        strategy=strategy,
        depth=depth,
        max_preemptions=max_preemptions,
        preempt=preempt,
        modules=modules,
    )
    install_task_interleaving(faultline, options)
