import random

from event_runtime.retry import RetryPolicy


def test_backoff_doubles_up_to_the_ceiling_and_jitters_below_it() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=1.0, max_seconds=8.0)
    rng = random.Random(7)
    for failed, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(failed, rng) for _ in range(200)]
        assert max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not stuck low


def test_it_gives_up_at_the_handlers_own_limit_when_it_has_one() -> None:
    policy = RetryPolicy(max_attempts=5)
    assert not policy.gives_up_after(4)
    assert policy.gives_up_after(5)
    assert policy.gives_up_after(2, limit=2)
