"""The whole edge service with a real PC/SC reader (pcscd + vpcd), end to end.

The reader is missing at start (pcscd not running): the service runs and
reports it down; pcscd starts, the reader is picked up, a card is recorded;
pcscd is killed and restarted, and taps work again.
"""

import json

from tests.edge_process import EdgeProcess, edge_cmd, edge_taps, write_config
from tests.pcscd_fixture import pcscd_stopped  # noqa: F401 (fixture)
from tests.sync_env import wait_for


def reader_state(config):
    return json.loads(edge_cmd(config, "status", "--json").stdout)["readers"][0]


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
        wait_for(lambda: reader_state(config)["connected"], 15, "reader up", interval=0.1)
        card = pcscd.card("04A1B2C3D4E5F6")
        card.insert()
        wait_for(lambda: edge_taps(config), 15, "first tap", interval=0.1)
        pcscd.remove(card)
        first = edge_taps(config)
        assert [(t["card_uid"], t["reader"], t["verdict"]) for t in first] == [
            ("04A1B2C3D4E5F6", "gerbang", "unknown")]

        pcscd.kill()
        wait_for(lambda: not reader_state(config)["connected"], 15, "reader down", interval=0.1)
        pcscd.start()
        wait_for(lambda: reader_state(config)["connected"], 15, "reader up again", interval=0.1)
        card2 = pcscd.card("8C3F2A11")
        card2.insert()
        wait_for(lambda: len(edge_taps(config)) == 2, 15, "tap after pcscd restart", interval=0.1)
        assert edge_taps(config)[1]["card_uid"] == "8C3F2A11"
        assert "reader gerbang (pcsc): down" in edge.output()
    finally:
        assert edge.terminate() == 0
