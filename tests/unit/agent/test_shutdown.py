"""The shutdown's one deadline: every step takes what is left of the budget, up to its share."""

from __future__ import annotations

from agent.shutdown import STORE_SHARE, TURN_SHARE, ShutdownDeadline


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_every_step_gets_what_is_left_of_one_budget_counted_from_the_first_start() -> None:
    clock = Clock()
    deadline = ShutdownDeadline(10.0, clock=clock)
    clock.now += 50  # nothing counts before the shutdown starts
    deadline.start()
    clock.now += 3
    deadline.start()  # a second start (the lifespan's, after uvicorn's) does not restart the count
    assert deadline.remaining(TURN_SHARE) == 2.0
    assert deadline.remaining(STORE_SHARE) == 5.0
    assert deadline.remaining() == 7.0
    clock.now += 9
    assert deadline.remaining() == 0.0 and deadline.remaining(TURN_SHARE) == 0.0


def test_the_first_question_starts_the_count() -> None:
    """A shutdown without a signal (an app run by a test client) is counted from its close."""
    clock = Clock()
    deadline = ShutdownDeadline(4.0, clock=clock)
    assert deadline.remaining() == 4.0
    clock.now += 1
    assert deadline.remaining() == 3.0
