"""The one atomic writer and the checks around it, on real file systems (a tiny full tmpfs for "disk full")."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import filesystems
import pytest
from PIL import Image

from impasto import media
from impasto.errors import ConfigError, ImageError
from impasto.modelcache import ModelCache


@pytest.fixture
def tiny_disk(tmp_path):  # noqa: ANN001, ANN201
    """A 64 KiB tmpfs, filled up: every write there fails with ENOSPC (needs root; skipped otherwise)."""
    with filesystems.tmpfs(tmp_path / "full", "size=64k") as mnt:
        filesystems.fill(mnt)
        yield mnt


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):  # noqa: ANN001
    dest = tmp_path / "out.txt"
    dest.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        media.atomic_write(dest, fail)
    assert dest.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    media.write_text(dest, "new")
    assert dest.read_text() == "new" and media.stray_parts(tmp_path) == []


def test_files_get_the_umask_permissions_without_touching_the_umask(tmp_path):  # noqa: ANN001
    code = (
        "import os, sys; from impasto import media; os.umask(0o027);"
        "p = media.write_text(sys.argv[1], 'x'); print(oct(p.stat().st_mode & 0o777), oct(os.umask(0o027)))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.txt")], capture_output=True, text=True)
    assert out.stdout.split() == ["0o640", "0o27"], out.stderr


def test_umask_is_never_changed_while_writing(tmp_path, monkeypatch):  # noqa: ANN001
    calls = []
    monkeypatch.setattr(os, "umask", lambda *a: calls.append(a) or 0o022)
    media.save_image(Image.new("RGB", (3, 3)), tmp_path / "a.png")
    assert calls == []  # os.umask round-trips are racy under threads


def test_concurrent_writers_to_one_path_never_tear(tmp_path):  # noqa: ANN001
    dest = tmp_path / "x.bin"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=media.write_bytes, args=(dest, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert dest.read_bytes() in payloads and media.stray_parts(tmp_path) == []


def test_check_output_path_and_folders(tmp_path):  # noqa: ANN001
    with pytest.raises(ConfigError, match="does not exist"):
        media.check_output_path(tmp_path / "no" / "x.png")
    (tmp_path / "x.png").write_bytes(b"keep")
    with pytest.raises(ConfigError, match="already exists"):
        media.check_output_path(tmp_path / "x.png")
    with pytest.raises(ConfigError, match="is a folder"):
        media.check_output_path(tmp_path)
    with pytest.raises(ConfigError, match="unsupported output extension"):
        media.check_output_path(tmp_path / "a.avi", allowed=media.ANIMATION_EXTENSIONS)
    made = media.ensure_folder(tmp_path / "new" / "deeper")
    assert made.is_dir()
    with pytest.raises(ConfigError, match="is a file"):
        media.ensure_folder(tmp_path / "x.png")
    assert (tmp_path / "x.png").read_bytes() == b"keep"


def test_full_disk_is_found_before_the_work_and_the_result_is_saved_elsewhere(tiny_disk, tmp_path):  # noqa: ANN001
    with pytest.raises(ImageError, match="KiB free"):
        media.check_writable(tiny_disk)
    img = Image.new("RGB", (64, 64), (10, 200, 30))
    near = tmp_path / "ckpt"
    near.mkdir()
    with pytest.raises(media.SavedElsewhere) as info:
        media.save_or_fallback(lambda p: media.save_image(img, p), tiny_disk / "out.png", near=[near])
    assert info.value.path.parent == near and "saved the result to" in str(info.value)
    assert Image.open(info.value.path).getpixel((0, 0)) == (10, 200, 30)
    assert media.stray_parts(tiny_disk) == [] and not (tiny_disk / "out.png").exists()


def test_save_image_keeps_the_given_profile_and_rgb_jpeg(tmp_path):  # noqa: ANN001
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 128))
    p = media.save_image(rgba, tmp_path / "a.jpg")
    with Image.open(p) as im:
        assert im.mode == "RGB"


def test_model_cache_holds_evicts_and_releases():
    cache = ModelCache(capacity=2)
    loads = []

    def loader(name: str):  # noqa: ANN202
        return lambda: loads.append(name) or object()

    a = cache.get("a", loader("a"))
    assert cache.get("a", loader("a")) is a and loads == ["a"]
    cache.get("b", loader("b"))
    cache.get("c", loader("c"))  # evicts "a", the least recently used
    assert "a" not in cache and len(cache) == 2
    cache.release("b")
    assert cache.keys() == ["c"]
    cache.release()
    assert len(cache) == 0
