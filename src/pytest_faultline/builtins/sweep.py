"""The built-in fault-space sweep scenario."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import scenario

if TYPE_CHECKING:
    from ..controller import Faultline


@scenario("fault_sweep")
def fault_sweep(
    faultline: Faultline,
    kinds: list[str | type] | str | None = None,
    targets: list[str] | None = None,
    budget: float | None = None,
    max_runs: int | None = None,
    pairs: bool = False,
) -> None:
    """Run the body once to record every fault site it reaches, then once per site and kind.

    Sites are fault points (each hit), calls to `targets` ('pkg.mod:Qual.name'), the test's
    socket operations (each connect, each read and write by byte offset, each close and
    shutdown) and the connections through its embedded proxies (each accept, and each chunk
    going up or down by byte offset). `kinds`: 'raise' (or exception classes) and 'disconnect'
    at points and calls; 'stall', 'truncate', 'reset' and 'short_read' at socket operations
    ('reset' also at closes and shutdowns); 'stall', 'truncate', 'reset' and 'reply_lost' at
    proxy connections (default: these seven); 'preempt' and 'preempt_step' switch threads
    (asyncio tasks) at each place another one could run. With `pairs=True` two faults are also
    combined where both pass alone. `budget` seconds and `max_runs` bound it; the first failure
    is raised with a site-by-kind table and one replay token per failing run. State that must
    be fresh for each run has to be created in the body.
    """
    from ..errors import ScenarioError
    from ..sweep.api import SweepOptions, install_fault_sweep

    options = SweepOptions.build(
        where="faultline scenario 'fault_sweep'",
        error=ScenarioError,
        kinds=kinds,
        targets=targets,
        budget=budget,
        max_runs=max_runs,
        pairs=pairs,
    )
    install_fault_sweep(faultline, options)
