"""The schedd after the fix (HTCondor 7.6.4 and 7.7):

1. ``Stream``: any attempt to read clears ``allow_empty_message``, so ``end_of_message()``
   reports a failed read.
2. ``receive_startd_alive`` checks ``get_secret()``'s result; a failed read is a communication
   error: no reply, so the startd keeps its claim and retries next period.
3. ALIVE is registered as a command with a payload: the server waits for it (non-blocking,
   bounded) before calling the handler, and does not set ``allow_empty_message`` for it.
"""

from __future__ import annotations

import selectors

from .core import ALIVE, BaseSchedd, BaseStream, CommunicationError, schedd_log

PAYLOAD_WAIT_S = 1.0
COMMANDS_WITH_PAYLOAD = frozenset({ALIVE})


class Stream(BaseStream):
    clear_flag_on_read = True


class Schedd(BaseSchedd):
    def __post_init__(self) -> None:
        self.stream_class = Stream
        super().__post_init__()

    def dispatch(self, command: int, stream: BaseStream) -> None:
        if command not in COMMANDS_WITH_PAYLOAD:
            super().dispatch(command, stream)
            return
        # Wait (bounded, without blocking in a read) for the payload before the handler runs,
        # and leave allow_empty_message unset: this command is known to carry data.
        with selectors.DefaultSelector() as sel:
            sel.register(stream.sock, selectors.EVENT_READ)
            if not sel.select(PAYLOAD_WAIT_S):
                raise CommunicationError(
                    f"command {command} from {stream.peer}: payload did not arrive within "
                    f"{PAYLOAD_WAIT_S}s"
                )
        self.commands[command](stream)

    def receive_startd_alive(self, stream: BaseStream) -> bool:
        claim_id = stream.get_secret()
        if claim_id is None or not stream.end_of_message():
            schedd_log.warning(
                "ALIVE from %s: failed to read the claim id; not answering", stream.peer
            )
            self.errors.append("ALIVE: failed to read the claim id")
            return False
        self.answer_alive(stream, claim_id)
        return True
