"""Emulate a contactless card for nfcpy's ``udp`` driver, in its own process.

The reader under test opens ``udp:localhost:PORT`` and sends its polling
commands to that port; this script plays the card: it binds ``PORT`` (the
udp driver binds the listening side, the polling side sends from an ephemeral
port), answers discovery and the reader's presence checks for ``--hold``
seconds after the reader has activated it, then falls silent ("the card is
taken away"), waits ``--pause`` seconds and presents it again, ``--times``
times in all. The pause must be longer than the reader takes to notice the
card has gone (about 1 s with the PMm below); a card back sooner is, rightly,
the same presentation to the reader.

Two cards:

``felica IDM``
    A FeliCa Standard card (Type 3 tag) with the 8-byte IDm, emulated by
    nfcpy's own :class:`nfc.tag.tt3.Type3TagEmulation` through
    ``ContactlessFrontend.connect(card=...)``.
``type2 UID``
    An ISO 14443-A Type 2 tag with a 4-, 7- or 10-byte UID. nfcpy's
    ``connect(card=...)`` only emulates Type 3 tags, so this uses the
    lower-level ``ContactlessFrontend.listen()`` (the udp driver does the
    14443-3 anticollision) and answers READ commands itself. The UID must not
    start with ``04`` (NXP): nfcpy probes NXP tags with extra commands and a
    re-selection that this minimal card does not implement.

Prints ``presented N`` once the reader has activated presentation N and
``removed N`` when it ends; exits 0 when every presentation was read, 3 when
``--timeout`` passed first.

Usage: ``python tests/nfc_tag_emulator.py --port 40001 felica 0102030405060708``
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

# PMm: byte 1 is the IC type; 0x01 (RC-S915) makes the reader treat the card
# as FeliCa Standard, whose presence check is a Request Response addressed to
# the IDm. Bytes 2-7 are response-time parameters; FF gives the reader
# ~0.3 s per command, so a busy test machine does not look like a card taken
# away (real cards answer in milliseconds).
PMM = bytes.fromhex("0301FFFFFFFFFFFF")
SYSTEM_CODE = bytes.fromhex("12FC")

Report = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def _serve(exchange: Callable[[Any, float], Any], respond: Callable[[Any], Any],
           first_cmd: Any, hold: float) -> None:
    """Answer the reader's commands until ``hold`` seconds have passed."""
    import nfc.clf

    rsp = respond(first_cmd)
    end = time.monotonic() + hold
    while (remaining := end - time.monotonic()) > 0:
        try:
            cmd = exchange(rsp, min(0.1, remaining))
            rsp = respond(cmd) if cmd else None
        except nfc.clf.BrokenLinkError:
            break  # the reader switched its field off
        except nfc.clf.CommunicationError:
            rsp = None  # quiet reader or garbled frame: keep listening


def _present_felica(clf: Any, idm: bytes, hold: float, deadline: float) -> bool:
    def on_startup(target: Any) -> Any:
        target.brty = "212F"
        target.sensf_res = bytearray(b"\x01" + idm + PMM + SYSTEM_CODE)
        return target

    tag = clf.connect(
        card={"on-startup": on_startup, "on-connect": lambda tag: False},
        terminate=lambda: time.monotonic() > deadline,
    )
    if not tag:
        return False
    _serve(tag.send_response, tag.process_command, tag.cmd, hold)
    return True


def _type2_memory(uid: bytes) -> bytes:
    # Pages 0-2 hold the UID and lock bytes, page 3 an NFC Forum capability
    # container (E1 10 ...), the rest is an empty NDEF TLV and zeros.
    head = uid[:9].ljust(9, b"\x00")
    return head + bytes(3) + bytes.fromhex("E1100600") + bytes.fromhex("0300FE") + bytes(45)


def _present_type2(clf: Any, uid: bytes, hold: float, deadline: float) -> bool:
    import nfc.clf

    memory = _type2_memory(uid)

    def respond(cmd: Any) -> Any:
        # READ (30 page) returns 16 bytes, wrapping like a real tag; any other
        # command gets silence, which the reader takes as "not supported".
        if cmd and len(cmd) == 2 and cmd[0] == 0x30:
            start = (cmd[1] * 4) % len(memory)
            return bytearray((memory + memory)[start:start + 16])
        return None

    while time.monotonic() < deadline:
        target = nfc.clf.LocalTarget("106A")
        target.sens_res = bytearray.fromhex("4400")
        target.sdd_res = bytearray(uid)
        target.sel_res = bytearray.fromhex("00")  # Type 2, no ISO-DEP
        activated = clf.listen(target, min(1.0, max(0.1, deadline - time.monotonic())))
        if activated is not None and activated.tt2_cmd:
            _serve(clf.exchange, respond, activated.tt2_cmd, hold)
            return True
    return False


def emulate(port: int, card: str, ident: str, *, times: int = 1, hold: float = 0.5,
            pause: float = 2.0, timeout: float = 20.0, report: Report = _print) -> int:
    """Present the card ``times`` times; 0 when all were read, 3 on timeout."""
    import nfc

    ident_bytes = bytes.fromhex(ident)
    present = {"felica": _present_felica, "type2": _present_type2}[card]
    deadline = time.monotonic() + timeout
    for n in range(1, times + 1):
        # A fresh frontend per presentation: closing it unbinds the port, so
        # between presentations the card is truly absent.
        clf = nfc.ContactlessFrontend(f"udp:localhost:{port}")
        try:
            if not present(clf, ident_bytes, hold, deadline):
                report(f"timeout waiting for presentation {n}")
                return 3
            report(f"presented {n}")
        finally:
            clf.close()
        report(f"removed {n}")
        if n < times:
            time.sleep(pause)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--times", type=int, default=1)
    parser.add_argument("--hold", type=float, default=0.5,
                        help="seconds the card stays after activation")
    parser.add_argument("--pause", type=float, default=2.0,
                        help="seconds between presentations")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("card", choices=("felica", "type2"))
    parser.add_argument("ident", help="IDm (felica) or UID (type2) in hex")
    args = parser.parse_args(argv)
    return emulate(args.port, args.card, args.ident, times=args.times,
                   hold=args.hold, pause=args.pause, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
