"""``faultline.explore()`` of a coroutine function from plain ``asyncio`` code, outside a test
run, loads neither pytest nor the plugin's pytest side (timing lives in
``benchmarks/bench_async.py``: importing pytest was most of the cold start)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PLAIN_ASYNCIO = textwrap.dedent(
    """
    import asyncio, json, sys
    from pytest_faultline.controller import Faultline

    class Counter:
        def __init__(self):
            self.value = 0

        async def increment(self):
            seen = self.value
            await asyncio.sleep(0)
            self.value = seen + 1

    async def main():
        counter = Counter()
        await asyncio.gather(counter.increment(), counter.increment())
        assert counter.value == 2, "lost update"

    fl = Faultline(seed=1, nodeid="plain")
    found = fl.explore(main, runs=100, raises=False)
    fl.close()
    print(json.dumps({"failure": repr(found.failure), "modules": sorted(sys.modules)}))
    """
)

# What a plain asyncio program must not pay for: pytest (~0.1 s to import), the plugin and the
# scenario registry, and the fixtures' fakes and clock.
NOT_LOADED = {
    "pytest",
    "_pytest.config",
    "_pytest.fixtures",
    "pluggy",
    "faker",
    "freezegun",
    "pytest_faultline.plugin",
    "pytest_faultline.fixtures",
    "pytest_faultline.registry",
}


def test_explore_from_plain_asyncio_code_does_not_import_pytest() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_ASYNCIO],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # found: the controlled loop ran the body under several task orders
    assert out["failure"] == "AssertionError('lost update')"
    loaded = set(out["modules"])
    assert "pytest_faultline.aio.loop" in loaded
    assert loaded & NOT_LOADED == set()


def test_the_probe_sees_pytest_when_it_is_imported() -> None:
    # The check above would pass vacuously if the child could not see pytest at all.
    done = subprocess.run(
        [sys.executable, "-c", "import pytest, sys; print('pytest' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "True"
