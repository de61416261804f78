"""Records taps as fast as it can and prints each acknowledged event_id.

Used by the kill -9 test: ``python -m tests.tap_writer DB PREFIX``. A line is
printed (and flushed) only after the recorder has committed the tap and given
the feedback, i.e. after the moment the person would hear "accepted".
"""

import sys

from edge.clock import Clock
from edge.outbox import Outbox
from edge.recorder import Recorder
from hardware.feedback import Feedback
from hardware.reader import FakeReader


def main() -> None:
    path, prefix = sys.argv[1], int(sys.argv[2])
    outbox = Outbox(path)
    out = sys.stdout

    def acknowledged(record) -> None:
        out.write(f"{record.event_id} {record.seq}\n")
        out.flush()

    recorder = Recorder(outbox, feedback=Feedback(), clock=Clock(), debounce_seconds=0,
                        when_recorded=acknowledged)
    reader = FakeReader("kill9", when_tapped=recorder.handle).open()
    i = 0
    while True:
        reader.tap(f"{prefix:02X}{i & 0xFFFFFF:06X}")
        i += 1


if __name__ == "__main__":
    import logging

    logging.disable(logging.CRITICAL)
    main()
