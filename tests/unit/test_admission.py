"""Admission control's FIFO slots: a freed slot goes to the oldest waiter, and none is lost."""
import subprocess
import sys
import textwrap
import threading
import time

from webapp.config import ROOT
from webapp.server.admission import FifoSlots


def test_fifo_slots_hand_a_freed_slot_to_the_oldest_waiter_not_a_newcomer():
    slots = FifoSlots(1)
    slots.acquire()
    order = []

    def waiter(name):
        slots.acquire()
        order.append(name)

    first = threading.Thread(target=waiter, args=("first",))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=waiter, args=("second",))
    second.start()
    time.sleep(0.05)
    slots.release()  # handed to "first" ...
    first.join(2)
    assert order == ["first"]
    # ... and a newcomer cannot barge in while "second" waits.
    got = []
    barger = threading.Thread(target=lambda: (slots.acquire(), got.append(True)))
    slots.release()  # handed to "second"
    second.join(2)
    barger.start()
    time.sleep(0.05)
    assert order == ["first", "second"] and not got
    slots.release()
    barger.join(2)
    assert got == [True]


def test_fifo_slots_survive_a_waiter_killed_before_or_after_the_hand_over():
    # Under gevent's monkey patching, as in a web worker (this test process is not patched).
    script = textwrap.dedent("""
        from gevent import monkey; monkey.patch_all()
        import gevent
        from webapp.server.admission import FifoSlots

        def request(slots):
            with slots:              # as AdmissionControl uses them
                gevent.sleep(10)

        for kill_after_release in (False, True):
            slots = FifoSlots(1)
            slots.acquire()
            doomed = gevent.spawn(request, slots)
            gevent.sleep(0.01)       # it waits for the slot now
            if kill_after_release:
                slots.release()      # handed over; it dies before or just after taking it
                doomed.kill()
            else:
                doomed.kill()        # it dies while still queued
                slots.release()
            ok = gevent.spawn(slots.acquire)
            ok.join(timeout=2)
            assert ok.successful(), f"slot lost (kill_after_release={kill_after_release})"
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
