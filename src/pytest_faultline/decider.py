"""Every nondeterministic choice of a test run, and the replay token that records them.

A run draws all its choices (does a fault fire, where a read splits, which thread runs next)
from one :class:`Decider`. Each fault source draws from its own :class:`Stream`, seeded from
``(seed, source)``, so threads racing through one source cannot reorder another source's draws.
Streams driven by a search strategy (the thread scheduler's) are *recorded*: their choices are
not derivable from the seed, so they travel in the token. Seeded streams are re-derived on replay.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import zlib

from . import _raw
from ._record import FrozenRecord
from .errors import ReplayTokenError

__all__ = ["Decider", "ReplayToken", "Stream", "derive_seed", "test_fingerprint"]

TOKEN_VERSION = "fl1"
SEED_LIMIT = 2**64
Choice = int | float

_TOKEN_RE = re.compile(
    r"^(?P<version>fl\d+)\.(?P<seed>\d+)\.(?P<test>[0-9a-f]{8})(?:\.(?P<choices>[A-Za-z0-9_-]+))?$"
)
TOKEN_FORMAT_HELP = (
    "a replay token looks like 'fl1.<seed>.<test>' or 'fl1.<seed>.<test>.<choices>'; copy it "
    "whole from the failure report or from the JSON report"
)


def derive_seed(seed: int, *parts: str) -> int:
    """A 32-bit seed derived from ``seed`` and ``parts``; stable across runs and platforms."""
    digest = hashlib.blake2b(
        ":".join((str(seed), *parts)).encode("utf-8", "surrogatepass"), digest_size=4
    ).digest()
    return int.from_bytes(digest, "big")


def test_fingerprint(nodeid: str) -> str:
    """Eight hex digits naming a test id, so a token knows which test it was recorded for."""
    return hashlib.blake2b(nodeid.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()


test_fingerprint.__test__ = False  # type: ignore[attr-defined]  # not a test, despite the name


# Written out, not @dataclass: the import of the controller is on every pytest start (_record.py).
class ReplayToken(FrozenRecord):
    """A run in one printable string: format version, the test's seed, the test it belongs to,
    and the choices of recorded streams."""

    __slots__ = __match_args__ = ("seed", "test", "choices")
    seed: int
    test: str
    choices: dict[str, list[Choice]]

    def __init__(
        self, seed: int, test: str, choices: dict[str, list[Choice]] | None = None
    ) -> None:
        self._set(seed, test, {} if choices is None else choices)

    def encode(self) -> str:
        text = f"{TOKEN_VERSION}.{self.seed}.{self.test}"
        if self.choices:
            payload = json.dumps(self.choices, separators=(",", ":"), sort_keys=True)
            packed = base64.urlsafe_b64encode(zlib.compress(payload.encode(), 9))
            text += "." + packed.decode("ascii").rstrip("=")
        return text

    __str__ = encode

    @classmethod
    def decode(cls, text: str) -> ReplayToken:
        """Parse a token; :class:`ReplayTokenError` says what is wrong with a bad one."""
        text = text.strip()
        match = _TOKEN_RE.match(text)
        if match is None:
            if not text.startswith("fl"):
                raise ReplayTokenError(
                    f"malformed replay token {text!r}: it must start with "
                    f"'{TOKEN_VERSION}.'; {TOKEN_FORMAT_HELP}"
                )
            raise ReplayTokenError(f"malformed replay token {text!r}: {TOKEN_FORMAT_HELP}")
        if match["version"] != TOKEN_VERSION:
            raise ReplayTokenError(
                f"replay token {text!r} is of format {match['version']!r}, but this version of "
                f"pytest-faultline reads {TOKEN_VERSION!r}; record it again with this version"
            )
        seed = int(match["seed"])
        if seed >= SEED_LIMIT:
            raise ReplayTokenError(f"replay token {text!r} has a seed beyond 2**64")
        choices: dict[str, list[Choice]] = {}
        if match["choices"]:
            packed = match["choices"]
            try:
                raw = zlib.decompress(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
                loaded = json.loads(raw)
            except (ValueError, zlib.error) as exc:
                raise ReplayTokenError(
                    f"replay token {text!r} is damaged ({exc}): it was truncated or mistyped; "
                    f"{TOKEN_FORMAT_HELP}"
                ) from None
            if not isinstance(loaded, dict) or not all(
                isinstance(k, str)
                and isinstance(v, list)
                and all(isinstance(c, (int, float)) for c in v)
                for k, v in loaded.items()
            ):
                raise ReplayTokenError(f"replay token {text!r} holds choices of the wrong shape")
            choices = loaded
        return cls(seed=seed, test=match["test"], choices=choices)


class Stream:
    """The choices of one fault source.

    Seeded streams draw from ``random.Random(derive_seed(seed, source))``. Recorded streams also
    keep every choice for the token, and on replay return the recorded choices in order.
    """

    def __init__(
        self, decider: Decider, source: str, *, recorded: bool, replay: list[Choice] | None
    ) -> None:
        self.source = source
        self.recorded = recorded
        self.rng = random.Random(derive_seed(decider.seed, source))
        self.choices: list[Choice] = []
        self._decider = decider
        self._replay = list(replay) if replay is not None else None
        self._lock = _raw.allocate_lock()

    def _next_replayed(self, valid: type, check: object = None) -> Choice | None:
        if self._replay is None:
            return None
        if not self._replay:
            self._decider.note_divergence(
                f"stream {self.source!r} asked for more choices than the token recorded "
                f"({len(self.choices)})"
            )
            self._replay = None
            return None
        value = self._replay.pop(0)
        if not isinstance(value, valid) or (isinstance(check, int) and not 0 <= value < check):
            self._decider.note_divergence(
                f"stream {self.source!r} choice {len(self.choices)} was {value!r}, which does "
                f"not fit this run"
            )
            self._replay = None
            return None
        return value

    def unused(self) -> int:
        """Recorded choices of the replayed token not asked for (yet)."""
        return len(self._replay) if self._replay else 0

    def record(self, values: list[Choice]) -> list[Choice] | None:
        """Record ``values`` as they are (facts of the run, not draws); on replay, return what
        the token recorded in their place (None if it recorded nothing) and keep that, so the
        token of a replay is the token replayed (the caller reports a mismatch)."""
        with self._lock:
            replayed = None
            if self._replay is not None:
                replayed, self._replay = self._replay, None
            self.choices.extend(replayed or values)
            return replayed

    def choice(self, n: int) -> int:
        """An integer in ``range(n)``."""
        if n <= 0:
            raise ValueError(f"choice() needs n >= 1, got {n}")
        with self._lock:
            value = self._next_replayed(int, n)
            if value is None:
                value = self.rng.randrange(n)
            self.choices.append(value)
            return int(value)

    def chance(self, probability: float) -> bool:
        """True with ``probability``; certain outcomes draw nothing."""
        if probability >= 1.0:
            return True
        if probability <= 0.0:
            return False
        with self._lock:
            value = self._next_replayed(int, 2)
            if value is None:
                value = int(self.rng.random() < probability)
            self.choices.append(value)
            return bool(value)

    def uniform(self, low: float, high: float) -> float:
        """A float between ``low`` and ``high``."""
        with self._lock:
            value = self._next_replayed(float)
            if value is None:
                value = self.rng.uniform(low, high)
            self.choices.append(value)
            return float(value)


class Decider:
    """The source of every choice in one test run."""

    def __init__(self, seed: int, *, test: str = "00000000", token: ReplayToken | None = None):
        if token is not None:
            seed = token.seed
        self.seed = seed
        self.test = test
        self.token_in = token
        self.divergences: list[str] = []
        self._streams: dict[str, Stream] = {}
        self._lock = _raw.allocate_lock()

    def stream(self, source: str, *, recorded: bool = False) -> Stream:
        """The stream for ``source``, created on first use."""
        with self._lock:
            stream = self._streams.get(source)
            if stream is None:
                replay = None
                if recorded and self.token_in is not None:
                    replay = self.token_in.choices.get(source, [])
                stream = Stream(self, source, recorded=recorded, replay=replay)
                self._streams[source] = stream
            return stream

    def random(self, source: str) -> random.Random:
        """A ``random.Random`` seeded from ``(seed, source)`` for free-form use."""
        return random.Random(derive_seed(self.seed, source))

    def pin(self, source: str, values: list[Choice]) -> None:
        """Record ``values`` as choices of the recorded stream ``source``, so they travel in the
        token: choices made outside the streams (which fault a sweep's run injects) come back
        from ``token_in.choices[source]`` on replay."""
        stream = self.stream(source, recorded=True)
        with stream._lock:
            stream.choices.extend(values)

    def note_divergence(self, message: str) -> None:
        self.divergences.append(message)

    def unused_choices(self) -> dict[str, int]:
        """Per recorded stream, how many choices of the replayed token this run left unused
        (a schedule that ended early is not the recorded one)."""
        with self._lock:
            streams = list(self._streams.values())
        out = {}
        for stream in streams:
            left = stream.unused()
            if left:
                out[stream.source] = left
        if self.token_in is not None:
            for source, choices in self.token_in.choices.items():
                if source not in self._streams and choices and not source.endswith(".options"):
                    out[source] = len(choices)
        return out

    def token(self) -> ReplayToken:
        """The token that replays this run's choices."""
        with self._lock:
            choices = {
                name: list(stream.choices)
                for name, stream in self._streams.items()
                if stream.recorded and stream.choices
            }
        return ReplayToken(seed=self.seed, test=self.test, choices=choices)
