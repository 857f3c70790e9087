"""The scenario registered by the hook is applied like a built-in one."""

from __future__ import annotations

import pytest
from disk import write


@pytest.mark.faultline("slow_disk", seconds=0.002)
def test_a_slow_disk_still_writes(faultline):
    log = []
    write(log, "hello")
    assert log == ["hello"]
    assert faultline.hits("disk.write") == 1
