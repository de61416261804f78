"""The whole edge service with a real PC/SC reader (pcscd + vpcd), end to end.

The reader is missing at start (pcscd not running): the service runs and
reports it down; pcscd starts, the reader is picked up, a card is recorded;
pcscd is killed and restarted, and taps work again.
"""

import json
import time

from tests.edge_process import EdgeProcess, edge_cmd, write_config
from tests.pcscd_fixture import pcscd_stopped  # noqa: F401 (fixture)


def reader_state(config):
    return json.loads(edge_cmd(config, "status", "--json").stdout)["readers"][0]


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def taps(config):
    return [json.loads(line) for line in edge_cmd(config, "taps", "--json").stdout.splitlines()]


def test_edge_with_pcsc_reader(tmp_path, pcscd_stopped):
    pcscd = pcscd_stopped
    config = write_config(tmp_path, readers='[[readers]]\nname = "gerbang"\ndriver = "pcsc"\n'
                                             'match = "Virtual PCD 00 00"\n')
    edge = EdgeProcess(config)
    try:
        edge.wait_ready()
        state = reader_state(config)
        assert state["connected"] is False and "pcscd" in state["error"]

        pcscd.start()
        wait_for(lambda: reader_state(config)["connected"], what="reader up")
        card = pcscd.card("04A1B2C3D4E5F6")
        card.insert()
        wait_for(lambda: taps(config), what="first tap")
        pcscd.remove(card)
        first = taps(config)
        assert [(t["card_uid"], t["reader"], t["verdict"]) for t in first] == [
            ("04A1B2C3D4E5F6", "gerbang", "unknown")]

        pcscd.kill()
        wait_for(lambda: not reader_state(config)["connected"], what="reader down")
        pcscd.start()
        wait_for(lambda: reader_state(config)["connected"], what="reader up again")
        card2 = pcscd.card("8C3F2A11")
        card2.insert()
        wait_for(lambda: len(taps(config)) == 2, what="tap after pcscd restart")
        assert taps(config)[1]["card_uid"] == "8C3F2A11"
        assert "reader gerbang (pcsc): down" in edge.output()
    finally:
        assert edge.terminate() == 0
