"""Built-in thread scenarios."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..registry import scenario

if TYPE_CHECKING:
    from ..controller import Faultline


@scenario("thread_preemption")
def thread_preemption(
    faultline: Faultline,
    runs: int = 100,
    strategy: Literal["random", "pct", "dfs"] = "random",
    depth: int = 3,
    max_preemptions: int | None = None,
    preempt: Literal["sync", "lines", "bytecode"] = "sync",
    modules: list[str] | None = None,
) -> None:
    """Re-run the test body under `runs` controlled thread interleavings (create state in the body).

    Threads started by the body run one at a time; every lock, condition, event, semaphore,
    barrier, queue, sleep, join and fault point (with preempt="lines": every line of `modules`;
    with preempt="bytecode": every bytecode of `modules` that touches shared state, for races
    inside one line such as `self.n += 1`) is a point where another thread may be scheduled.
    The first failing schedule is shrunk, replayed to check it, and reported with its replay
    token; a deadlock is reported as a wait-for cycle. `strategy`: "random" (the default: it
    found the benchmark's bugs in the fewest schedules), "pct" (depth `depth`), or "dfs"
    (exhaustive at the `preempt` granularity, at most `max_preemptions` preemptions per
    schedule).
    """
    from ..errors import ScenarioError
    from ..exploring import ExploreOptions
    from ..sched import install_thread_preemption

    options = ExploreOptions.build(
        where="faultline scenario 'thread_preemption'",
        error=ScenarioError,
        runs=runs,
        strategy=strategy,
        depth=depth,
        max_preemptions=max_preemptions,
        preempt=preempt,
        modules=modules,
    )
    install_thread_preemption(faultline, options)
