"""Run ``provisioning/edge/install`` as a real process against a scratch root."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
INSTALL = REPO / "provisioning" / "edge" / "install"
SHIPPED = REPO / "provisioning" / "edge"


def run_install(root: Path, *args: str, env: dict[str, str] | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
    """The installer with ``--root root``; fails the test on a non-zero exit if ``check``."""
    environ = {k: v for k, v in os.environ.items() if k != "ATTENDANCE_CLAIM_CODE"}
    result = subprocess.run([sys.executable, str(INSTALL), "--root", str(root), *args],
                            capture_output=True, text=True, timeout=60,
                            env={**environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"install {args} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file, folder and link under ``root``: kind, mode, mtime and content."""
    entries: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            st = path.lstat()
            rel = "/" + str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                entries[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                                path.read_bytes())
    return entries


def actions(output: str) -> list[str]:
    """The system commands the installer printed instead of running (``--root``)."""
    return [line.split("would run", 1)[1].strip() for line in output.splitlines()
            if line.strip().startswith("would run")]


def files(root: Path) -> dict[str, int]:
    """Regular files and links under ``root`` with their modes (links: -1)."""
    return {path: (-1 if entry[0] == "link" else entry[1])
            for path, entry in snapshot(root).items() if entry[0] != "dir"}
