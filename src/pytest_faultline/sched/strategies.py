"""Search strategies: who runs next at each scheduling point.

A strategy answers with an index into the alternatives, where alternative 0 is "the current
thread goes on" whenever it can. Whatever chose it, the index is recorded in the run's recorded
``sched`` stream, so the run's replay token reproduces the schedule with no strategy at all.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..exploring import STRATEGIES
from .runtime import Decision

if TYPE_CHECKING:
    # Protocols for the type checker only: building a Protocol class costs ~0.2 ms at import,
    # and this module is on the first exploration's path.
    from typing import Protocol

    from ..decider import Stream

    class Chooser(Protocol):
        """What a strategy needs of a scheduler (threads or asyncio tasks): the recorded
        stream its choices go to."""

        @property
        def stream(self) -> Stream: ...

    class Runnable(Protocol):
        """What a strategy needs of an alternative (a thread or a task): a stable index in
        the run."""

        @property
        def index(self) -> int: ...


__all__ = [
    "STRATEGIES",
    "DepthFirst",
    "PrefixReplay",
    "Probabilistic",
    "RandomWalk",
    "TokenReplay",
    "make_strategy",
    "preemptions",
]

PCT_FIRST_ESTIMATE = 20


def preemptions(decisions: Sequence[Decision]) -> int:
    """How many times a runnable thread was switched away from."""
    return sum(1 for d in decisions if d.preemptive)


def _record(sched: Chooser, k: int) -> int:
    sched.stream.choices.append(k)
    return k


class RandomWalk:
    """Uniformly random choice at every point (many preemptions; finds shallow bugs fast)."""

    name = "random"

    def begin(self, rng: random.Random) -> None:
        pass

    def pick(self, sched: Chooser, me: Runnable, alts: Sequence[Runnable]) -> int:
        return sched.stream.choice(len(alts))

    def end(self, decisions: list[Decision]) -> None:
        pass

    exhausted = False


class Probabilistic:
    """PCT (Burckhardt et al., 2010): random thread priorities and ``depth - 1`` points where the
    running thread drops to the lowest priority. Finds a bug of depth d with probability at
    least 1/(threads * steps^(d-1)) per run."""

    name = "pct"
    exhausted = False

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.estimate = PCT_FIRST_ESTIMATE
        self._priority: dict[int, float] = {}
        self._changes: dict[int, int] = {}
        self._rng = random.Random(0)
        self._step = 0

    def begin(self, rng: random.Random) -> None:
        self._rng = rng
        self._priority = {}
        self._step = 0
        points = rng.sample(range(1, self.estimate + 1), min(self.depth - 1, self.estimate))
        # The i-th change point lowers the running thread to priority i (below every initial one).
        self._changes = {step: i for i, step in enumerate(sorted(points), start=1)}

    def _prio(self, rec: Runnable) -> float:
        prio = self._priority.get(rec.index)
        if prio is None:
            prio = self._priority[rec.index] = self.depth + self._rng.random()
        return prio

    def pick(self, sched: Chooser, me: Runnable, alts: Sequence[Runnable]) -> int:
        self._step += 1
        for rec in alts:
            self._prio(rec)
        change = self._changes.get(self._step)
        if change is not None:
            self._priority[me.index] = float(self.depth - change) / self.depth
        best = max(range(len(alts)), key=lambda i: self._prio(alts[i]))
        return _record(sched, best)

    def end(self, decisions: list[Decision]) -> None:
        self.estimate = max(self.estimate, len(decisions))


class DepthFirst:
    """Bounded exhaustive search: every schedule with at most ``max_preemptions`` preemptions,
    in depth-first order (non-preemptive choices first). Stateless: each run replays a prefix of
    decisions and tries the next alternative at the deepest point that has one."""

    name = "dfs"

    def __init__(self, max_preemptions: int | None) -> None:
        self.max_preemptions = max_preemptions
        self.prefix: list[int] = []
        self.exhausted = False
        self._pos = 0

    def begin(self, rng: random.Random) -> None:
        self._pos = 0

    def pick(self, sched: Chooser, me: Runnable, alts: Sequence[Runnable]) -> int:
        pos = self._pos
        self._pos += 1
        k = self.prefix[pos] if pos < len(self.prefix) else 0
        return _record(sched, k if k < len(alts) else 0)

    def end(self, decisions: list[Decision]) -> None:
        budget = self.max_preemptions
        used = [0]
        for d in decisions:
            used.append(used[-1] + (1 if d.preemptive else 0))
        for j in range(len(decisions) - 1, -1, -1):
            d = decisions[j]
            nxt = d.k + 1
            if nxt >= d.n:
                continue
            cost = used[j] + (1 if d.current_ready else 0)
            if budget is not None and cost > budget:
                continue
            self.prefix = [x.k for x in decisions[:j]] + [nxt]
            return
        self.exhausted = True


class PrefixReplay:
    """Follow ``prefix`` (indices that no longer fit become 0), then never preempt. Shrinking."""

    name = "shrink"
    exhausted = False

    def __init__(self, prefix: list[int]) -> None:
        self.prefix = prefix
        self._pos = 0

    def begin(self, rng: random.Random) -> None:
        self._pos = 0

    def pick(self, sched: Chooser, me: Runnable, alts: Sequence[Runnable]) -> int:
        pos = self._pos
        self._pos += 1
        k = self.prefix[pos] if pos < len(self.prefix) else 0
        return _record(sched, k if k < len(alts) else 0)

    def end(self, decisions: list[Decision]) -> None:
        pass


class TokenReplay:
    """The choices of a replay token, through the decider (which reports divergence)."""

    name = "replay"
    exhausted = False

    def begin(self, rng: random.Random) -> None:
        pass

    def pick(self, sched: Chooser, me: Runnable, alts: Sequence[Runnable]) -> int:
        return sched.stream.choice(len(alts))

    def end(self, decisions: list[Decision]) -> None:
        pass


Strategy = RandomWalk | Probabilistic | DepthFirst | PrefixReplay | TokenReplay


def make_strategy(name: str, *, depth: int, max_preemptions: int | None) -> Strategy:
    if name == "random":
        return RandomWalk()
    if name == "pct":
        return Probabilistic(depth)
    if name == "dfs":
        return DepthFirst(max_preemptions)
    raise ValueError(name)
