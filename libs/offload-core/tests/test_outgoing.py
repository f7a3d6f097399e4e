"""offload_core.outgoing: the outbox's order, budget and withdrawal, and a session's
confirms by delivery tag, as pure objects."""

from __future__ import annotations

import pika

from offload_core.outgoing import QUEUED, WITHDRAWN, WRITTEN, Confirms, Outbox, Outgoing


def outgoing(name: str, *, fire_and_forget: bool = False) -> Outgoing:
    return Outgoing("ex", name, b"", pika.BasicProperties(message_id=name), fire_and_forget)


def test_the_outbox_writes_in_order_and_skips_what_was_withdrawn():
    box = Outbox(budget=10)
    a, b, c = outgoing("a"), outgoing("b"), outgoing("c")
    for o in (a, b, c):
        box.put(o)
    assert box.withdraw(b) and b.state == WITHDRAWN
    sent: list[str] = []
    assert box.write(lambda o: sent.append(o.routing_key)) is None
    assert sent == ["a", "c"] and a.state == WRITTEN and not box.withdraw(a)


def test_a_failed_write_stops_and_keeps_the_message_first():
    box = Outbox(budget=10)
    a, b = outgoing("a"), outgoing("b")
    box.put(a)
    box.put(b)

    def refuse(o: Outgoing) -> None:
        raise ConnectionError("channel closed")

    assert isinstance(box.write(refuse), ConnectionError)
    assert [o.routing_key for o in box.take_all()] == ["a", "b"] and a.state == QUEUED


def test_fire_and_forget_messages_are_held_against_the_budget():
    box = Outbox(budget=2)
    assert box.hold() and box.hold() and not box.hold()
    box.release()
    assert box.hold()


def test_messages_put_first_go_before_the_queue_in_their_order():
    box = Outbox(budget=10)
    box.put(outgoing("later"))
    written = [outgoing("x"), outgoing("y")]
    for o in written:
        o.state = WRITTEN
    box.put_first(written)
    assert [(o.routing_key, o.state) for o in box.take_all()] == [
        ("x", QUEUED),
        ("y", QUEUED),
        ("later", QUEUED),
    ]


def test_a_confirm_answers_its_tag_or_every_tag_up_to_it():
    confirms = Confirms(session=None)  # type: ignore[arg-type]  # no session is needed to count tags
    first, second, third = outgoing("1"), outgoing("2"), outgoing("3")
    for o in (first, second, third):
        confirms.written(o)
    assert confirms.answered(2, multiple=False) == [second]
    assert confirms.answered(3, multiple=True) == [first, third]
    assert len(confirms) == 0 and confirms.answered(3, multiple=False) == []


def test_a_returned_message_is_reported_once():
    confirms = Confirms(session=None)  # type: ignore[arg-type]
    lost = outgoing("lost")
    confirms.returned("lost")
    assert confirms.was_returned(lost) and not confirms.was_returned(lost)


def test_what_a_session_leaves_unanswered_comes_back_in_written_order():
    confirms = Confirms(session=None)  # type: ignore[arg-type]
    messages = [outgoing(str(i)) for i in range(5)]
    for o in messages:
        confirms.written(o)
    confirms.answered(2, multiple=False)
    assert [o.routing_key for o in confirms.take_all()] == ["0", "2", "3", "4"]
