"""The sweep's report: a site-by-kind table a person reads in a minute (sites that behave alike
collapsed into one row), each failure with its replay command, and how much was covered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .sites import PROXY, SOCKET, THREAD, Site

if TYPE_CHECKING:
    from ._probe import Fault
    from .api import Run, Sweep

__all__ = ["format_sweep", "progress_line", "summary_line", "sweep_record"]

SHOWN_FAILURES = 10
MARKS = {"pass": "ok", "fail": "FAIL", "unreached": "unreached", "": "-", "skipped": "."}


def _outcomes(sweep: Sweep) -> dict[tuple[str, str], str]:
    """(site key, kind name) -> outcome of its single-fault run."""
    sites = {s.key: s for s in sweep.sites}
    out: dict[tuple[str, str], str] = {}
    for run in sweep.singles:
        (fault,) = run.faults
        kind = sweep.kinds[fault.kind]
        for site in sites.values():
            if _matches(site, fault):
                out[(site.key, kind)] = run.outcome
                break
    return out


def _matches(site: Site, fault: Fault) -> bool:
    from .sites import WHERE_CODES, stem_hash

    return (
        WHERE_CODES[site.where] == fault.where
        and site.hit == fault.hit
        and stem_hash(site.where, site.stem) == fault.stem
    )


def _site_of(sweep: Sweep, fault: Fault) -> Site | None:
    for site in sweep.sites:
        if _matches(site, fault):
            return site
    return None


def _row_cells(sweep: Sweep, site: Site, outcomes: dict[tuple[str, str], str]) -> tuple[str, ...]:
    cells = []
    for name, kind in zip(sweep.kinds, sweep.fault_kinds, strict=False):
        if not kind.applies(site):
            cells.append("")
        else:
            cells.append(outcomes.get((site.key, name), "skipped"))
    return tuple(cells)


def _group_label(site: Site) -> tuple[str, ...]:
    if site.where == PROXY:
        return (site.where, site.location, site.name.rsplit("#", 1)[0], site.op)
    if site.where == SOCKET:
        return (site.where, site.location, site.name.split("#")[0], site.op)
    if site.where == THREAD:
        return (site.where, site.op, site.name)  # per thread: "T1 (cm_watchdog) acquire ..."
    return (site.where, site.name)


def _rows(sweep: Sweep) -> list[tuple[str, str, tuple[str, ...]]]:
    """(site column, location column, cells), alike sites collapsed, in order of appearance."""
    outcomes = _outcomes(sweep)
    groups: dict[tuple[Any, ...], list[Site]] = {}
    for site in sweep.sites:
        cells = _row_cells(sweep, site, outcomes)
        if not any(cells):
            continue  # no requested kind applies here
        groups.setdefault((*_group_label(site), cells), []).append(site)
    rows = []
    for key, members in groups.items():
        cells = key[-1]
        first = members[0]
        if len(members) == 1:
            label = first.describe()
        elif first.where == PROXY:
            label = _proxy_row(first, members)
        elif first.where == SOCKET:
            names = sorted({m.name for m in members})
            shown = names[0] if len(names) == 1 else f"{names[0]}..{names[-1].split('#')[-1]}"
            offsets = (
                ""
                if first.op in ("connect", "close", "shutdown")
                else f" after {_ranges([m.hit for m in members])} B"
            )
            label = f"{shown} {first.op}{offsets} (x{len(members)})"
        elif first.where == THREAD:
            label = f"{first.op} {first.name} #{_ranges([m.hit for m in members])}"
        else:
            hits = [m.hit for m in members]
            label = f"{first.where} {first.name} #{_ranges(hits)}"
        rows.append((label, first.location, cells))
    return rows


def _proxy_row(first: Site, members: list[Site]) -> str:
    """``proxy redis#1..3 down@0,37 (x4)``: the proxy's connections, the chunks' offsets."""
    proxy = first.name.rsplit("#", 1)[0]
    numbers = _ranges([int(m.name.rsplit("#", 1)[1]) for m in members])
    offsets = "" if first.op == "accept" else f"@{_ranges([m.hit for m in members])}"
    return f"proxy {proxy}#{numbers} {first.op}{offsets} (x{len(members)})"


def _ranges(numbers: list[int]) -> str:
    numbers = sorted(numbers)
    numbers = sorted(set(numbers))
    parts = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


def summary_line(sweep: Sweep) -> str:
    singles = len(sweep.singles)
    text = (
        f"{len(sweep.sites)} sites, {singles} of {sweep.planned_singles} single faults"
        + (
            f", {len(sweep.pairs)} of {sweep.pair_candidates} pairs"
            if sweep.pair_candidates
            else ""
        )
        + f" in {sweep.elapsed:.2f}s: "
    )
    failures = sweep.failures
    if sweep.replayed is not None and not sweep.runs:
        return f"replayed one sweep run: {'passed' if sweep.replayed.passed else 'failed'}"
    text += f"{len(failures)} failed" if failures else "no failure"
    if not sweep.complete:
        text += f" (incomplete: {'; '.join(sweep.notes) or 'stopped early'})"
    elif sweep.notes:
        text += f" ({'; '.join(sweep.notes)})"
    return text


def _describe_faults(sweep: Sweep, run: Run) -> str:
    parts = []
    for fault in run.faults:
        site = _site_of(sweep, fault)
        where = site.describe() if site is not None else f"site #{fault.stem:08x}@{fault.hit}"
        at = f" ({site.location})" if site is not None and site.location else ""
        parts.append(f"{sweep.kinds[fault.kind]} at {where}{at}")
    return " + ".join(parts)


def format_sweep(sweep: Sweep) -> str:
    from ..report import replay_command

    lines = [f"faultline sweep: {summary_line(sweep)}"]
    if sweep.replayed is not None:
        run = sweep.replayed
        lines.append(
            f"replayed the run of its token: {'passed' if run.passed else run.error_text()}"
        )
    rows = _rows(sweep)
    if rows:
        head = ("site", "where", *sweep.kinds)
        table = [head] + [(label, loc, *(MARKS[c] for c in cells)) for label, loc, cells in rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        for row in table:
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
            )
        lines.append(
            "  (ok: survived; FAIL: the test failed; unreached: the run never got there; "
            "-: the kind does not apply; .: not run)"
        )
    failures = sweep.failures
    for run in failures[:SHOWN_FAILURES]:
        check = "" if run.reproducible is not False else " (did NOT reproduce on replay)"
        lines.append(f"FAIL {_describe_faults(sweep, run)}: {run.error_text()}{check}")
        if sweep.nodeid:
            lines.append(f"  replay: {replay_command(sweep.nodeid, run.token)}")
        else:
            lines.append(f"  token: {run.token}")
    if len(failures) > SHOWN_FAILURES:
        lines.append(f"... and {len(failures) - SHOWN_FAILURES} more failures (JSON report)")
    if failures and any(len(r.faults) == 2 for r in failures):
        lines.append("pairs are tried only where both faults pass alone: each is minimal")
    if not sweep.complete:
        lines.append(f"coverage: {coverage_text(sweep)}")
    return "\n".join(lines)


def coverage_text(sweep: Sweep) -> str:
    singles = len(sweep.singles)
    share = 100.0 * singles / sweep.planned_singles if sweep.planned_singles else 100.0
    text = f"{singles} of {sweep.planned_singles} single faults run ({share:.0f}%)"
    if sweep.pair_candidates:
        text += f", {len(sweep.pairs)} of {sweep.pair_candidates} pairs"
    return text


def progress_line(sweep: Sweep, elapsed: float, budget: float | None) -> str:
    of = f" of {budget:g}s" if budget is not None else ""
    return (
        f"faultline sweep {sweep.nodeid or ''}: {len(sweep.runs)} runs, "
        f"{len(sweep.failures)} failed, {coverage_text(sweep)}, {elapsed:.1f}s{of}"
    )


def sweep_record(sweep: Sweep) -> dict[str, Any]:
    """The JSON report's form of a sweep: the same table, the failures with their tokens."""
    from ..report import replay_command

    outcomes = _outcomes(sweep)
    return {
        "kinds": list(sweep.kinds),
        "summary": summary_line(sweep),
        "complete": sweep.complete,
        "notes": list(sweep.notes),
        "elapsed": sweep.elapsed,
        "runs": len(sweep.runs),
        "singles": {"run": len(sweep.singles), "planned": sweep.planned_singles},
        "pairs": {
            "run": len(sweep.pairs),
            "planned": sweep.planned_pairs,
            "candidates": sweep.pair_candidates,
        },
        "sites": [
            {
                "site": site.describe(),
                "where": site.where,
                "name": site.name,
                "op": site.op,
                "hit": site.hit,
                "location": site.location,
                "results": {
                    kind: cell
                    for kind, cell in zip(
                        sweep.kinds, _row_cells(sweep, site, outcomes), strict=False
                    )
                    if cell
                },
            }
            for site in sweep.sites
        ],
        "rows": [
            {"site": label, "location": loc, "results": dict(zip(sweep.kinds, cells, strict=False))}
            for label, loc, cells in _rows(sweep)
        ],
        "failures": [
            {
                "faults": _describe_faults(sweep, run),
                "error": run.error_text(),
                "token": run.token,
                "replay": replay_command(sweep.nodeid, run.token) if sweep.nodeid else "",
                "reproducible": run.reproducible,
            }
            for run in sweep.failures
        ],
    }
