"""The Outbox's delivery proof, with plain data: sequence numbers, pongs, requeues.

A hypothesis state machine plays a client and a server with the WebSocket
server behaviour that makes one pong not enough (``websockets`` answers a
batch's pings, then hands the batch's messages to the application, and loses
the batch if the connection breaks in between), and checks that whatever the
outbox lets go was delivered, that everything is delivered in the end, first
deliveries in order.
"""

from __future__ import annotations

import json

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mrclient.orchestrator.outbox import Outbox


def test_a_message_is_delivered_after_the_second_pong() -> None:
    outbox = Outbox()
    outbox.put("a")
    assert (len(outbox), outbox.peek()) == (1, "a")
    outbox.mark_sent()
    assert (len(outbox), outbox.peek(), outbox.unconfirmed) == (1, None, 1)
    first = outbox.ping_payload()
    assert first == b"mrclient 1 0"
    assert outbox.confirm(first) == 0, "read, not yet known delivered"
    assert outbox.awaiting_second_pong
    second = outbox.ping_payload()
    assert second == b"mrclient 1 1"
    assert outbox.confirm(second) == 1
    assert len(outbox) == 0 and not outbox.awaiting_second_pong


def test_unconfirmed_messages_go_back_first_in_order() -> None:
    outbox = Outbox()
    for text in "abc":
        outbox.put(text)
    outbox.mark_sent()
    outbox.mark_sent()
    outbox.put("d")
    assert outbox.requeue() == 2
    sent = []
    while (text := outbox.peek()) is not None:
        sent.append(text)
        outbox.mark_sent()
    assert sent == ["a", "b", "c", "d"]
    assert outbox.take_all() == ["a", "b", "c", "d"] and len(outbox) == 0


def test_pongs_that_are_not_ours_prove_nothing() -> None:
    outbox = Outbox()
    outbox.put("a")
    outbox.mark_sent()
    for payload in [b"", b"\x00\x01\x02\x03", b"mrclient", b"mrclient x y", b"mrclient 1", b"mrclient 5 5",
                    b"mrclient 1 2", b"other 1 1"]:
        assert outbox.confirm(payload) == 0, payload
    assert outbox.unconfirmed == 1 and not outbox.awaiting_second_pong


def test_a_stale_proof_never_confirms_a_message_sent_again() -> None:
    """Pongs of an old connection never reach a new one, but a stale 'read' number must not help."""
    outbox = Outbox()
    outbox.put("a")
    outbox.mark_sent()  # seq 1
    outbox.confirm(outbox.ping_payload())  # read through 1, not delivered
    outbox.requeue()
    outbox.mark_sent()  # "a" again, seq 2
    assert outbox.confirm(b"mrclient 2 1") == 0, "proof about seq 1 says nothing about seq 2"
    assert outbox.confirm(b"mrclient 2 2") == 1


def test_a_held_outbox_sends_nothing_until_released() -> None:
    outbox = Outbox()
    outbox.put("a")
    outbox.hold()
    assert outbox.on_hold and outbox.peek() is None and len(outbox) == 1, "held, not lost"
    outbox.release(lambda waiting: waiting)
    assert not outbox.on_hold and outbox.peek() == "a"


def test_release_lets_the_caller_drop_or_rewrite_what_waits_and_keeps_the_order() -> None:
    outbox = Outbox()
    for text in "abc":
        outbox.put(text)
    outbox.mark_sent()
    outbox.mark_sent()  # a and b unconfirmed
    outbox.requeue()
    outbox.hold()
    seen: list[list[str]] = []

    def decide(waiting: list[str]) -> list[str]:
        seen.append(waiting)
        return [text.upper() for text in waiting if text != "b"]

    outbox.release(decide)
    outbox.put("d")  # made after the init: behind, untouched
    sent = []
    while (text := outbox.peek()) is not None:
        sent.append(text)
        outbox.mark_sent()
    assert seen == [["a", "b", "c"]] and sent == ["A", "C", "d"]


class DeliveryMachine(RuleBasedStateMachine):
    """A client with an Outbox, a wire, and a server that reads in batches and may die mid-batch."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox = Outbox()
        self.made: list[str] = []
        self.delivered: list[str] = []
        self.to_server: list[tuple[str, bytes]] = []  # ("msg", text) or ("ping", payload)
        self.to_client: list[bytes] = []  # pongs

    @rule()
    def make(self) -> None:
        text = json.dumps({"n": len(self.made)})
        self.made.append(text)
        self.outbox.put(text)

    @precondition(lambda self: self.outbox.peek() is not None)
    @rule()
    def send(self) -> None:
        text = self.outbox.peek()
        assert text is not None
        self.to_server.append(("msg", text.encode()))
        self.outbox.mark_sent()

    @rule()
    def ping(self) -> None:
        self.to_server.append(("ping", self.outbox.ping_payload()))

    @precondition(lambda self: bool(self.to_client))
    @rule()
    def receive_pong(self) -> None:
        self.outbox.confirm(self.to_client.pop(0))
        if self.outbox.awaiting_second_pong:
            self.ping()

    @precondition(lambda self: bool(self.to_server))
    @rule(size=st.integers(1, 6), dies_after_pongs=st.none() | st.integers(0, 3))
    def server_reads_a_batch(self, size: int, dies_after_pongs: int | None) -> None:
        batch, self.to_server = self.to_server[:size], self.to_server[size:]
        pongs = [payload for kind, payload in batch if kind == "ping"]
        if dies_after_pongs is not None and dies_after_pongs < len(pongs):
            # Some pongs left and reached the client, then the connection broke: the batch's
            # messages never reached the application.
            self.to_client.extend(pongs[:dies_after_pongs])
            while self.to_client:
                self.receive_pong()
            self.drop()
            self.init()
            return
        self.to_client.extend(pongs)
        self.delivered.extend(payload.decode() for kind, payload in batch if kind == "msg")

    @rule()
    def drop(self) -> None:
        """The connection ends: whatever is in flight is lost; the pongs already read were acted on.

        The next connection holds the outbox until its init.
        """
        self.to_server.clear()
        self.to_client.clear()
        self.outbox.requeue()
        self.outbox.hold()

    @precondition(lambda self: self.outbox.on_hold)
    @rule()
    def init(self) -> None:
        """The new connection's init: everything waiting still goes (the filter is redelivery's, tested apart)."""
        assert self.outbox.peek() is None, "nothing leaves a held outbox"
        self.outbox.release(lambda waiting: waiting)

    @invariant()
    def only_delivered_messages_leave_the_outbox(self) -> None:
        held = set(self.outbox.held())
        for text in self.made:
            assert text in held or text in self.delivered, text

    def teardown(self) -> None:
        """Run the connection without faults until the outbox is empty: all arrive, in order."""
        if self.outbox.on_hold:
            self.init()
        for _ in range(10 * len(self.made) + 10):
            if len(self.outbox) == 0:
                break
            while self.outbox.peek() is not None:
                self.send()
            self.ping()
            while self.to_server or self.to_client:
                if self.to_server:
                    self.server_reads_a_batch(len(self.to_server), None)
                while self.to_client:
                    self.receive_pong()
        assert len(self.outbox) == 0
        assert list(dict.fromkeys(self.delivered)) == self.made


TestDelivery = DeliveryMachine.TestCase
TestDelivery.settings = settings(max_examples=500, stateful_step_count=40, deadline=None)


def test_a_pong_from_a_batch_the_server_then_lost_confirms_nothing() -> None:
    """The race the second pong closes, played out: report, ping, ping; the server pongs once, dies."""
    machine = DeliveryMachine()
    machine.make()
    machine.send()
    machine.ping()
    machine.ping()
    machine.server_reads_a_batch(size=3, dies_after_pongs=1)
    assert machine.delivered == [] and machine.outbox.held() == machine.made
    machine.teardown()
