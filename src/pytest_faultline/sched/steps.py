"""The records of a run: each scheduling point (:class:`Step`, for the swimlane) and each choice
among threads (:class:`Decision`, for the token and the strategies)."""

from __future__ import annotations

__all__ = ["Decision", "Step"]


# Step and Decision are tuples with named fields, written out: typing.NamedTuple costs 0.2 ms
# each at import, which the first exploration of a process pays.
class Step(tuple[int, int, str, str]):
    """One scheduling point of a run, for the swimlane: (number, thread, op, site)."""

    __slots__ = ()

    def __new__(cls, number: int, thread: int, op: str, site: str) -> Step:
        return tuple.__new__(cls, (number, thread, op, site))

    @property
    def number(self) -> int:
        return self[0]

    @property
    def thread(self) -> int:
        return self[1]

    @property
    def op(self) -> str:
        return self[2]

    @property
    def site(self) -> str:
        return self[3]

    def _replace(
        self,
        *,
        number: int | None = None,
        thread: int | None = None,
        op: str | None = None,
        site: str | None = None,
    ) -> Step:
        return Step(
            self[0] if number is None else number,
            self[1] if thread is None else thread,
            self[2] if op is None else op,
            self[3] if site is None else site,
        )

    def __repr__(self) -> str:
        return f"Step(number={self[0]!r}, thread={self[1]!r}, op={self[2]!r}, site={self[3]!r})"


class Decision(tuple[int, int, bool]):
    """A choice among ``n`` alternatives, (n, k, current_ready); alternative 0 is "the current
    thread goes on" when ``current_ready``, so ``k > 0`` then is a preemption."""

    __slots__ = ()

    def __new__(cls, n: int, k: int, current_ready: bool) -> Decision:
        return tuple.__new__(cls, (n, k, current_ready))

    @property
    def n(self) -> int:
        return self[0]

    @property
    def k(self) -> int:
        return self[1]

    @property
    def current_ready(self) -> bool:
        return self[2]

    @property
    def preemptive(self) -> bool:
        return self[2] and self[1] > 0

    def __repr__(self) -> str:
        return f"Decision(n={self[0]!r}, k={self[1]!r}, current_ready={self[2]!r})"
