import asyncio, pytest

def test_lost_update(faultline):
    async def body():
        state = {"n": 0}
        async def inc():
            v = state["n"]
            await asyncio.sleep(0)
            state["n"] = v + 1
        await asyncio.gather(inc(), inc())
        assert state["n"] == 2
    faultline.explore(body)

@pytest.mark.faultline("task_interleaving")
async def test_scen_buggy():
    lock = asyncio.Lock()
    state = {"n": 0}
    async def inc():
        async with lock:
            v = state["n"]
        async with lock:
            state["n"] = v + 1
    await asyncio.gather(inc(), inc())
    assert state["n"] == 2

@pytest.mark.faultline("task_interleaving")
async def test_abba():
    a, b = asyncio.Lock(), asyncio.Lock()
    async def one():
        async with a:
            async with b:
                pass
    async def two():
        async with b:
            async with a:
                pass
    await asyncio.gather(one(), two())
