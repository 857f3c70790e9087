"""The schedd as it was: the ALIVE handler trusts ``end_of_message()`` alone.

1. ``Stream``: reading does not clear ``allow_empty_message``, so the first
   ``end_of_message()`` after a command returns True even when the read before it failed.
2. ``receive_startd_alive`` ignores what ``get_secret()`` returned and goes on with
   ``claim_id=None``: an unknown claim, so it answers -1 and the startd kills the job.
3. The handler is called as soon as the command arrives, before the payload has.
"""

from __future__ import annotations

from .core import BaseSchedd, BaseStream


class Stream(BaseStream):
    clear_flag_on_read = False


class Schedd(BaseSchedd):
    def __post_init__(self) -> None:
        self.stream_class = Stream
        super().__post_init__()

    def receive_startd_alive(self, stream: BaseStream) -> bool:
        claim_id = stream.get_secret()
        if not stream.end_of_message():
            return False
        self.answer_alive(stream, claim_id)
        return True
