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
    strategy: Literal["random", "pct", "dfs"] = "pct",
    depth: int = 3,
    max_preemptions: int | None = None,
    preempt: Literal["sync", "lines"] = "sync",
    modules: list[str] | None = None,
) -> None:
    """Re-run the test body under `runs` controlled thread interleavings."""
    from ..sched import install_thread_preemption

    install_thread_preemption(
        faultline,
        runs=runs,
        strategy=strategy,
        depth=depth,
        max_preemptions=max_preemptions,
        preempt=preempt,
        modules=modules,
    )
