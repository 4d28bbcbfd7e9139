"""Download, import and verify against a local HTTP server on 127.0.0.1 with generated files."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from impasto.cli.main import main
from impasto.errors import WeightsError
from impasto.zoo import registry, store, validate

MAGIC = b"IMPASTO-TEST-WEIGHTS\n"


def _check_magic(ws, paths):  # noqa: ANN001, ANN202
    for p in paths:
        if not p.read_bytes().startswith(MAGIC):
            raise WeightsError(f"{p.name} is not a test-weights file")


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def log_message(self, *args):  # noqa: ANN002, ANN201 - keep test output clean
        pass

    def do_GET(self):  # noqa: N802, ANN201
        name = self.path.lstrip("/")
        if name == "truncated.bin":
            body = self.files["good.bin"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])  # the connection then closes early
            self.close_connection = True
            return
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():  # noqa: ANN201
    good = MAGIC + bytes(range(256)) * 64
    _Handler.files = {"good.bin": good, "bad.bin": MAGIC + b"\x00" * (len(good) - len(MAGIC))}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", good
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def test_set(server, monkeypatch, fresh_home):  # noqa: ANN001, ANN201
    base, good = server
    monkeypatch.setitem(validate.CHECKERS, "test-bytes", _check_magic)
    ws = registry.WeightSet(
        name="test.set",
        kind="test",
        description="generated test weights",
        urls=(f"{base}/good.bin",),
        files=("weights.bin",),
        sha256=(hashlib.sha256(good).hexdigest(),),
        size=(len(good),),
        licence="none",
        paper="none",
        preprocessing=registry.UNIT_RGB,
        upstream_format="test-bytes",
    )
    monkeypatch.setitem(registry.REGISTRY, ws.name, ws)
    return ws, base, good


def test_download_good_file_is_placed_and_verifies(test_set):  # noqa: ANN001
    ws, _, good = test_set
    [path] = store.download(ws.name, progress=False)
    assert path == store.weights_dir(ws.name) / "weights.bin"
    assert path.read_bytes() == good
    assert store.verify(ws.name) == [hashlib.sha256(good).hexdigest()]
    # nothing but the file itself is left in the cache folder (no temporary or staging files)
    assert sorted(p.name for p in path.parent.iterdir()) == ["weights.bin"]
    assert not [p for p in store.home().iterdir() if p.name.startswith(".download-")]


@pytest.mark.parametrize("name, words", [("bad.bin", "checksum"), ("truncated.bin", "failed"), ("missing.bin", "404")])
def test_download_failures_leave_nothing(test_set, name, words):  # noqa: ANN001
    ws, base, _ = test_set
    with pytest.raises(WeightsError, match=words):
        store.download(ws.name, urls=(f"{base}/{name}",), progress=False)
    assert not store.is_installed(ws.name)
    assert not list(store.home().rglob("*.bin"))


def test_cli_download_and_verify_exit_codes(test_set, capsys):  # noqa: ANN001
    ws, base, _ = test_set
    assert main(["models", "download", ws.name, "--url", f"{base}/missing.bin", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("impasto: error:") and "404" in err and err.count("\n") == 1
    assert main(["models", "download", ws.name, "-q"]) == 0
    assert main(["models", "verify", ws.name]) == 0
    # damage the cached copy: verify must now fail with exit 1 and name the set
    cached = store.weights_dir(ws.name) / "weights.bin"
    cached.write_bytes(cached.read_bytes()[:100])
    capsys.readouterr()
    assert main(["models", "verify", ws.name]) == 1
    assert "FAILED  test.set" in capsys.readouterr().out


def test_import_checks_then_copies_without_touching_source(test_set, tmp_path):  # noqa: ANN001
    ws, _, good = test_set
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"not weights at all")
    with pytest.raises(WeightsError):
        store.import_files(ws.name, wrong)
    assert not store.is_installed(ws.name)
    src = tmp_path / "mine.bin"
    src.write_bytes(good)
    [dest] = store.import_files(ws.name, src)
    assert src.exists() and src.read_bytes() == good  # the user's file is untouched
    assert dest.read_bytes() == good
    with pytest.raises(WeightsError, match="already installed"):
        store.import_files(ws.name, src)
    assert store.import_files(ws.name, src, force=True) == [dest]


def test_import_refuses_wrong_format_even_with_right_size(test_set, tmp_path, monkeypatch):  # noqa: ANN001
    ws, _, good = test_set
    # a record without a checksum: only the format check stands between a bad file and the cache
    monkeypatch.setitem(
        registry.REGISTRY, ws.name, registry.WeightSet(**{**ws.__dict__, "sha256": (None,), "size": (None,)})
    )
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"X" * len(good))
    with pytest.raises(WeightsError, match="not a test-weights file"):
        store.import_files(ws.name, bad)


def test_sha256_prefix_is_checked(tmp_path):  # noqa: ANN001
    ws = registry.get("vgg19.caffe")
    f = tmp_path / "x.pth"
    f.write_bytes(b"definitely not vgg")
    with pytest.raises(WeightsError, match="d01eb7cb"):
        store.check_digest(ws, 0, f)


def test_missing_weights_message_names_the_commands(fresh_home):  # noqa: ANN001
    with pytest.raises(WeightsError) as info:
        store.files_for("vgg16.caffe")
    msg = str(info.value)
    assert "impasto models download vgg16.caffe" in msg and "impasto models import vgg16.caffe" in msg


def test_home_follows_environment(fresh_home):  # noqa: ANN001
    assert store.home() == Path(fresh_home)
    assert store.weights_dir("x") == Path(fresh_home) / "weights" / "x"


def test_models_list_says_which_network_paint_uses(fresh_home, capsys):  # noqa: ANN001
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "paint uses: mobilenetv2.magenta (not VGG" in out
    assert "magenta.transformer" in out and "installed" in out
