"""``attendance-edge run`` serves the page; a page that cannot start never stops the taps."""

from __future__ import annotations

import socket

import pytest
import requests

from edge.config import load_config
from edge.service import EdgeService
from hardware.feedback import Feedback
from hardware.reader import FakeReader
from tests.edge_process import write_config
from tests.sync_env import free_port


def service_with_web(tmp_path, listen: str) -> EdgeService:
    config = load_config(write_config(tmp_path, web=f'[web]\nlisten = "{listen}"\n'), environ={})
    return EdgeService(config, readers=[FakeReader("gerbang")], feedback=Feedback())


def test_the_page_is_served_and_stopped_with_the_service(tmp_path):
    port = free_port()
    service = service_with_web(tmp_path, f"127.0.0.1:{port}")
    service.start()
    try:
        assert service.status()["web"] == {"url": f"http://127.0.0.1:{port}", "error": None}
        session = requests.Session()
        page = session.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and page.url.endswith("/login?next=/")
        assert "Masuk operator" in page.text and "operator add" in page.text
        css = session.get(f"http://127.0.0.1:{port}/static/style.css", timeout=5)
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    finally:
        service.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
    assert (tmp_path / "data" / "web-secret.key").exists()


def test_a_taken_port_is_reported_and_taps_go_on(tmp_path, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = service_with_web(tmp_path, f"127.0.0.1:{port}")
        service.start()
        try:
            web = service.status()["web"]
            assert web["url"] is None and f"127.0.0.1:{port}" in web["error"]
            assert "cannot serve the operator page" in caplog.text
            service.readers[0].tap("04A1B2C3")
            assert service.status()["taps_today"] == 1
        finally:
            service.stop()
