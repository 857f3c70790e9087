"""The decider's streams and the replay token round trip."""

from __future__ import annotations

import pytest

from pytest_faultline.decider import Decider, ReplayToken, derive_seed, test_fingerprint
from pytest_faultline.errors import ReplayTokenError


def test_same_seed_same_choices_and_sources_are_independent() -> None:
    a, b = Decider(42), Decider(42)
    # Drawing from another source first must not shift this source's choices.
    b.stream("other").choice(10)
    assert [a.stream("s").choice(100) for _ in range(20)] == [
        b.stream("s").choice(100) for _ in range(20)
    ]
    assert [Decider(43).stream("s").choice(100) for _ in range(5)] != [
        Decider(42).stream("s").choice(100) for _ in range(5)
    ]


def test_derived_seeds_depend_on_every_part() -> None:
    assert derive_seed(1, "a") == derive_seed(1, "a")
    assert len({derive_seed(1, "a"), derive_seed(2, "a"), derive_seed(1, "b")}) == 3
    assert 0 <= derive_seed(2**63, "x") < 2**32


def test_seed_only_token_round_trip() -> None:
    d = Decider(123456, test=test_fingerprint("tests/test_x.py::test_y"))
    d.stream("seeded").choice(5)  # seeded streams are derivable and stay out of the token
    token = d.token()
    assert token.choices == {}
    text = token.encode()
    assert text == f"fl1.123456.{test_fingerprint('tests/test_x.py::test_y')}"
    assert ReplayToken.decode(text) == token


def test_recorded_stream_replays_its_choices_exactly() -> None:
    first = Decider(7, test="0badf00d")
    sched = first.stream("sched", recorded=True)
    made = [sched.choice(3) for _ in range(50)] + [int(sched.chance(0.5))]
    made.append(sched.uniform(0.0, 1.0))  # type: ignore[arg-type]
    text = first.token().encode()

    token = ReplayToken.decode(text)
    again = Decider(999, token=token)  # the token's seed wins
    assert again.seed == 7
    replayed = again.stream("sched", recorded=True)
    assert [replayed.choice(3) for _ in range(50)] + [int(replayed.chance(0.5))] == made[:51]
    assert replayed.uniform(0.0, 1.0) == made[51]
    assert again.divergences == []


def test_replay_that_runs_past_the_token_reports_divergence() -> None:
    token = ReplayToken(seed=1, test="00000000", choices={"sched": [2, 0]})
    d = Decider(1, token=token)
    s = d.stream("sched", recorded=True)
    assert [s.choice(3), s.choice(3)] == [2, 0]
    s.choice(3)  # beyond the recording: falls back to the seed and says so
    assert d.divergences
    assert "more choices than the token recorded" in d.divergences[0]


def test_replayed_choice_out_of_range_is_divergence_not_crash() -> None:
    d = Decider(1, token=ReplayToken(seed=1, test="00000000", choices={"s": [5]}))
    assert 0 <= d.stream("s", recorded=True).choice(2) < 2
    assert "does not fit this run" in d.divergences[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must start with 'fl1.'"),
        ("hello", "must start with 'fl1.'"),
        ("fl1.12", "malformed replay token 'fl1.12'"),
        ("fl1.12.zzzzzzzz", "malformed replay token"),
        ("fl9.12.0badf00d", "is of format 'fl9'"),
        ("fl1.12.0badf00d.eNqrVkrOz", "is damaged"),
        (f"fl1.{2**64}.0badf00d", "seed beyond 2**64"),
    ],
)
def test_malformed_tokens_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ReplayTokenError, match=message.replace("*", r"\*").replace(".", r"\.")):
        ReplayToken.decode(text)


def test_truncated_token_is_detected() -> None:
    text = ReplayToken(seed=5, test="0badf00d", choices={"s": list(range(40))}).encode()
    with pytest.raises(ReplayTokenError, match="damaged"):
        ReplayToken.decode(text[:-6])


def test_chance_extremes_draw_nothing() -> None:
    d = Decider(3)
    s = d.stream("p", recorded=True)
    assert s.chance(1.0) is True
    assert s.chance(0.0) is False
    assert s.choices == []
