"""The ids the service gives its own events: UUIDv7, so they sort by creation time."""

import time
import uuid

from event_runtime.ids import new_event_id


def test_an_id_is_a_version_7_uuid_stamped_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    event_id = uuid.UUID(new_event_id())
    after = time.time_ns() // 1_000_000
    assert (event_id.version, event_id.variant) == (7, uuid.RFC_4122)
    assert before <= event_id.int >> 80 <= after


def test_ids_sort_in_the_order_they_were_made_and_never_repeat() -> None:
    earlier = [new_event_id() for _ in range(5000)]
    time.sleep(0.002)
    later = [new_event_id() for _ in range(5000)]
    assert max(earlier) < min(later)
    assert len(set(earlier + later)) == 10000
