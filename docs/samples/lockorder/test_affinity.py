"""Thread affinity: a confined object used from another thread raises at once."""

from __future__ import annotations

import threading

import pytest
from server import Server, serve

from pytest_faultline import ThreadAffinityError


@pytest.mark.xfail(raises=ThreadAffinityError, strict=True, reason="process() on a worker")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.faultline("thread_affinity", types=["server:Server"])
def test_server_stays_on_its_thread():
    server = Server()  # confined to this thread
    worker = threading.Thread(target=server.process)
    worker.start()  # ThreadAffinityError in the worker
    worker.join(5)


def test_handover(faultline):
    server = faultline.confine(Server())
    worker = threading.Thread(target=serve, args=(server,))
    faultline.transfer(server, worker)  # before or after it starts
    worker.start()
    worker.join(5)
    assert server.processed == 1
