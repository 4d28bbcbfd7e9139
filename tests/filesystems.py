"""Real file systems that cannot take a file, for the "read-only folder" and "disk full" failure paths.

The tests run as root, where ``chmod`` does not stop a write, so a read-only or full destination is a tmpfs mounted
for the test (``tmpfs``), filled up where it has to be full (``fill``). Where mounting is not permitted the test is
skipped, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``folder`` (made if missing) with mount ``options`` such as ``"ro,size=1m"``; lazily
    unmounted afterwards. Skips the test where there is no mount command or mounting is not permitted."""
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command here: cannot make a read-only or full file system for this test")
    folder.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {exc}")
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here (needs root with CAP_SYS_ADMIN): {p.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill ``folder``'s file system with one file, ``filler``, until about ``leave`` bytes are free.

    ``leave=0`` writes until the file system says it is full (ENOSPC) and checks that a further small write fails
    too; otherwise one write of the free space less ``leave`` bytes, synced to the file system.
    """
    if leave:
        st = os.statvfs(folder)
        free = st.f_bavail * st.f_frsize
        with open(folder / "filler", "wb") as fh:
            fh.write(b"\0" * max(0, free - leave))
            fh.flush()
            os.fsync(fh.fileno())
        return
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    probe = folder / "probe"
    try:
        with pytest.raises(OSError):
            probe.write_bytes(b"x" * 100)
    finally:
        probe.unlink(missing_ok=True)
