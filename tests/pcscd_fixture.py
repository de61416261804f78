"""A private pcscd with virtual (vpcd) readers, for tests of the PC/SC driver.

pcscd's client socket is fixed at ``/run/pcscd/pcscd.comm``, so only one
pcscd can run on a machine: the fixture needs root, refuses to run beside a
pcscd it did not start, and takes a file lock so two test runs take turns.

Its config directory holds one vpcd entry. Debian's vpcd gives each entry two
slots, on ``CHANNELID`` and ``CHANNELID + 1``, which pcscd names
``Virtual PCD 00 00`` and ``Virtual PCD 00 01``: two readers, each with its
own port for a :class:`~tests.vpcd_card.VirtualCard`.

Use it by importing the fixtures into a test module::

    from tests.pcscd_fixture import pcscd, pcscd_stopped  # noqa: F401

``pcscd`` is started; ``pcscd_stopped`` is the same object not started yet.
Both can be killed (SIGKILL) and started again mid-test, and are cleaned up
afterwards (cards removed, pcscd stopped, its stale files removed).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.syspart import need
from tests.vpcd_card import VirtualCard

PCSCD_DIR = Path("/run/pcscd")
PCSCD_SOCKET = PCSCD_DIR / "pcscd.comm"
PCSCD_PIDFILE = PCSCD_DIR / "pcscd.pid"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
LOCK_FILE = Path("/tmp/attendance-pcscd-tests.lock")
FIRST_PORT = 40000  # vpcd's default is 35963; stay off it

READER_NAMES = ("Virtual PCD 00 00", "Virtual PCD 00 01")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))  # vpcd binds INADDR_ANY
        except OSError:
            return False
    return True


def free_port_pair(first: int = FIRST_PORT) -> int:
    """A port P with P and P + 1 free (vpcd's two slots)."""
    for port in range(first, first + 200, 2):
        if _port_free(port) and _port_free(port + 1):
            return port
    raise RuntimeError(f"no two free TCP ports in {first}..{first + 200} for vpcd")


def _pidfile_pid() -> int:
    # pcscd writes "PID\n\0": the NUL is not whitespace to str.strip().
    return int(PCSCD_PIDFILE.read_text().strip("\0 \n"))


def running_pcscd_pid() -> int | None:
    """The pid of a pcscd answering on its socket, or None.

    A pcscd killed with SIGKILL leaves its socket file behind; connecting
    tells a live one from that.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(str(PCSCD_SOCKET)) != 0:
            return None
    try:
        return _pidfile_pid()
    except (OSError, ValueError):
        return -1


def _scard_readers() -> list[str] | None:
    """Readers as pcscd lists them now; None while pcscd does not answer.

    Straight pyscard rather than hardware.pcsc: the fixture must not depend
    on the code it tests.
    """
    from smartcard import scard

    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if code != scard.SCARD_S_SUCCESS:
        return None
    try:
        code, readers = scard.SCardListReaders(context, [])
        if code == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        return list(readers) if code == scard.SCARD_S_SUCCESS else None
    finally:
        scard.SCardReleaseContext(context)


class Pcscd:
    """A pcscd process of our own with one vpcd entry (two readers)."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.config_dir = workdir / "reader.conf.d"
        self.log_path = workdir / "pcscd.log"
        self.port = port
        self.ports = (port, port + 1)
        self.reader_names = READER_NAMES
        self.process: subprocess.Popen[bytes] | None = None
        self._cards: list[VirtualCard] = []

    # -- lifecycle ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, readers: bool = True, timeout: float = 10.0) -> "Pcscd":
        """Start pcscd (with no reader configured when ``readers`` is False)
        and wait until it lists the virtual readers."""
        if self.running:
            raise RuntimeError("pcscd is already running")
        self._write_config(readers)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["pcscd", "--foreground", "--config", str(self.config_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        want = set(self.reader_names) if readers else set()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"pcscd exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            seen = _scard_readers()
            if seen is not None and want <= set(seen):
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"pcscd did not list {sorted(want)} within {timeout}s "
                    f"(it lists {seen}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL pcscd, as a crash would: no cleanup on its side."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """Stop pcscd politely (SIGTERM), SIGKILL if it lingers."""
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        # A killed pcscd leaves its socket and pid file; a new one copes, but
        # we leave /run/pcscd as we found it.
        try:
            if _pidfile_pid() == process.pid:
                PCSCD_PIDFILE.unlink(missing_ok=True)
                PCSCD_SOCKET.unlink(missing_ok=True)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        for card in self._cards:
            card.remove()
        self._cards.clear()
        self.stop()

    # -- cards ---------------------------------------------------------------------
    def card(self, uid: bytes | str, slot: int = 0) -> VirtualCard:
        """A card (not inserted yet) for the reader ``reader_names[slot]``;
        removed at teardown."""
        card = VirtualCard(self.ports[slot], uid)
        self._cards.append(card)
        return card

    def wait_for_card(self, slot: int, present: bool, timeout: float = 5.0) -> None:
        """Wait until pcscd itself sees a card (or none) on ``reader_names[slot]``.

        vpcd notices a closed card socket only when it next talks to it; if
        that is its power-off after the grace period, it accepts a waiting
        new connection at once and pcscd never sees the slot empty. Tests
        that re-present a card wait for "empty" first, as a person's hand
        takes longer than pcscd's 400 ms presence poll.
        """
        from smartcard import scard

        name = self.reader_names[slot]
        code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if code != scard.SCARD_S_SUCCESS:
            raise RuntimeError(f"pcscd does not answer: {scard.SCardGetErrorMessage(code)}")
        try:
            state = scard.SCARD_STATE_UNAWARE
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                code, states = scard.SCardGetStatusChange(context, 100, [(name, state)])
                if code == scard.SCARD_S_SUCCESS:
                    state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                    if bool(state & scard.SCARD_STATE_PRESENT) == present:
                        return
                elif code != scard.SCARD_E_TIMEOUT:
                    raise RuntimeError(f"{name}: {scard.SCardGetErrorMessage(code)}")
        finally:
            scard.SCardReleaseContext(context)
        raise RuntimeError(f"{name}: card {'present' if present else 'absent'} "
                           f"not seen within {timeout}s")

    def remove(self, card: VirtualCard) -> None:
        """Take ``card`` off and wait until pcscd sees its slot empty."""
        card.remove()
        self.wait_for_card(self.ports.index(card.port), present=False)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _write_config(self, readers: bool) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        entry = self.config_dir / "vpcd"
        if not readers:
            entry.unlink(missing_ok=True)
            return
        entry.write_text(
            'FRIENDLYNAME "Virtual PCD"\n'
            f"DEVICENAME   /dev/null:0x{self.port:04X}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    0x{self.port:04X}\n"
        )


def _need_parts() -> None:
    need(shutil.which("pcscd") is not None, "pcscd is not installed (apt install pcscd)")
    need(
        VPCD_DRIVER.exists(),
        f"vpcd driver {VPCD_DRIVER} is missing (apt install vsmartcard-vpcd; test machines only)",
    )
    need(hasattr(os, "geteuid") and os.geteuid() == 0,
         "a private pcscd needs root (it creates /run/pcscd/pcscd.comm)")
    try:
        import smartcard.scard  # noqa: F401
    except ImportError as exc:
        need(False, f"pyscard is not importable: {exc}")


def _take_lock(timeout: float = 120.0) -> int:
    """Serialise test runs: one pcscd per machine."""
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                need(False, f"another test run held {LOCK_FILE} for {timeout:.0f}s")
            time.sleep(0.2)


@pytest.fixture
def pcscd_stopped(tmp_path: Path) -> Iterator[Pcscd]:
    """A :class:`Pcscd`, not started yet."""
    _need_parts()
    lock = _take_lock()
    try:
        pid = running_pcscd_pid()
        need(
            pid is None,
            f"another pcscd is already running (pid {pid}, socket {PCSCD_SOCKET}); "
            "these tests start their own on that fixed socket: stop it first "
            "(systemctl stop pcscd.socket pcscd, or kill the pid)",
        )
        service = Pcscd(tmp_path, free_port_pair())
        try:
            yield service
        finally:
            service.close()
    finally:
        os.close(lock)  # releases the flock


@pytest.fixture
def pcscd(pcscd_stopped: Pcscd) -> Pcscd:
    """A started :class:`Pcscd` with readers ``Virtual PCD 00 00`` and ``00 01``."""
    return pcscd_stopped.start()
