"""Bad input for ``impasto models``: each case gives its exit code, one error line, no traceback, and leaves the
user's files and the weight cache as they were. Downloads go to a test server on 127.0.0.1 (never the network).

Most cases call the CLI's ``main()`` in this process (a subprocess costs seconds of imports each); the kill test
and one plain bad-input case run the real ``python -m impasto`` in a subprocess.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cli_proc
import filesystems
import pytest
import tiny_weights as tw
import torch

from impasto import api
from impasto.cli.main import main

NIN_FILE = "nin_imagenet.pth"


# --- fixtures -----------------------------------------------------------------------------------------------------


@dataclass
class World:
    """The test's weight cache (IMPASTO_HOME) and a folder of the user's own files."""

    home: Path
    user: Path

    def file(self, name: str, data: bytes) -> Path:
        p = self.user / name
        p.write_bytes(data)
        return p

    def snapshot(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        return cli_proc.snapshot(self.home), cli_proc.snapshot(self.user)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    home, user = tmp_path / "home", tmp_path / "user"
    home.mkdir()
    user.mkdir()
    monkeypatch.setenv("IMPASTO_HOME", str(home))
    return World(home, user)


def _nin_bytes(seed: int = 0) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(tw.nin_state(seed=seed), buf)
    return buf.getvalue()


def _noise(n: int) -> bytes:
    """``n`` random bytes that start like neither a zip archive nor a pickle (so the message is fixed)."""
    import random

    return b"\x13" + random.Random(n).randbytes(n - 1)


def _vgg_bytes(blocks: tuple[int, ...] = tw.VGG19_BLOCKS) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(tw.vgg_state(blocks=blocks), buf)
    return buf.getvalue()


@dataclass
class Server:
    base: str
    files: dict[str, bytes]
    half_sent: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def server():  # noqa: ANN201
    """``/NAME`` serves files[NAME] (404 otherwise); ``/truncated/NAME`` closes the connection half-way;
    ``/slow/NAME`` sends half, sets ``half_sent`` and waits for ``release``."""
    state = Server("", {})

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802
            mode, _, name = self.path.lstrip("/").rpartition("/")
            body = state.files.get(name)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "":
                self.wfile.write(body)
                return
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if mode == "slow":
                state.half_sent.set()
                state.release.wait(60)
            self.close_connection = True

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fails(capsys: pytest.CaptureFixture[str], argv: list[str], code: int, *words: str, world: World | None = None
          ) -> tuple[str, str]:  # fmt: skip
    """Run ``impasto ARGV`` in-process; assert exit ``code``, exactly one error line (containing ``words``), no
    traceback and, when ``world`` is given, that neither the cache nor the user's folder changed.

    Returns ``(the error line, stdout)``."""
    before = world.snapshot() if world is not None else None
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("impasto: error: "), err
    assert rc == code, err
    for w in words:
        assert w in lines[0], lines[0]
    if world is not None:
        assert world.snapshot() == before
        assert not list(world.home.glob(".download-*")), "a staging folder was left behind"
    return lines[0], out


# --- names and usage ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, words",
    [
        (["models", "info", "vgg91.caffe"], ["unknown weight set 'vgg91.caffe'", "did you mean vgg19.caffe"]),
        (["models", "download", "nin.cafe"], ["unknown weight set 'nin.cafe'", "did you mean nin.caffe"]),
        (["models", "path", "biggan-deep.257"], ["unknown weight set", "biggan-deep.256"]),
        (["models", "import", "zzz", "x.pth"], ["unknown weight set 'zzz'", "known: alexnet.torch, biggan-deep.128"]),
        (["models", "info"], ["required: name"]),
        (["models", "import", "nin.caffe"], ["required: file"]),
        (["models", "frobnicate"], ["invalid choice: 'frobnicate'"]),
        (["models"], ["required: ACTION"]),
    ],
)
def test_names_and_usage_exit_2(world: World, capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]
                                ) -> None:  # fmt: skip
    fails(capsys, argv, 2, *words, world=world)


def test_real_cli_unknown_name_one_line(world: World) -> None:
    res = cli_proc.run(["models", "info", "vgg91.caffe"], env={"IMPASTO_HOME": str(world.home)})
    assert res.code == 2
    assert "did you mean vgg19.caffe" in res.one_line_error()
    assert not [ln for ln in res.err.splitlines() if ln.strip() and not ln.startswith("impasto: error:")], res.err


# --- import: the user's file is checked, copied, never moved or changed ------------------------------------------


def test_import_missing_file(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, ["models", "import", "nin.caffe", str(world.user / "nope.pth")], 1, "no such file", world=world)


def test_import_folder_where_a_file_is_expected(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.file("other.pth", _nin_bytes())
    fails(capsys, ["models", "import", "nin.caffe", str(world.user)], 1, f"folder without {NIN_FILE}", world=world)


def test_import_file_where_a_folder_is_expected(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    f = world.file("pytorch_model.bin", b"\0" * 64)
    fails(capsys, ["models", "import", "biggan-deep.128", str(f)], 1, "give the folder holding them", world=world)


def test_import_folder_lacking_a_file(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.file("config.json", b"{}")
    fails(capsys, ["models", "import", "biggan-deep.128", str(world.user)], 1, "lacks pytorch_model.bin", world=world)


def test_import_random_bytes(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    f = world.file("random.pth", _noise(4096))
    fails(capsys, ["models", "import", "nin.caffe", str(f)], 2, "not a PyTorch file at all", world=world)


def test_import_pth_with_wrong_keys(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    f = world.user / "keys.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, f)
    fails(capsys, ["models", "import", "vgg19.caffe", str(f)], 2, "cannot recognise the network", world=world)


def test_import_pickled_code_is_refused(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    f = world.user / "code.pth"
    torch.save({"features.0.weight": torch.zeros(1), "meta": Path("x")}, f)  # a pickled object, not a tensor
    fails(capsys, ["models", "import", "nin.caffe", str(f)], 2, "never unpickles code", world=world)


def test_import_another_network_than_the_name_says(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    f = world.file("nin.pth", _nin_bytes())
    fails(capsys, ["models", "import", "vgg19.caffe", str(f)], 1, "holds a NIN but 'vgg19.caffe' is a VGG-19",
          world=world)  # fmt: skip


def test_import_wrong_checksum_for_a_canonical_name(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # a valid VGG-19 layout, but not neural-style-pt's file: the registry knows its sha256 starts d01eb7cb
    f = world.file("vgg19.pth", _vgg_bytes())
    line, _ = fails(capsys, ["models", "import", "vgg19.caffe", str(f)], 1, "expected one starting d01eb7cb",
                    world=world)  # fmt: skip
    assert "--model-file" in line  # says how to use such a file anyway


def test_import_truncated_file(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    data = _nin_bytes()
    f = world.file("cut.pth", data[: len(data) // 2])
    fails(capsys, ["models", "import", "nin.caffe", str(f)], 1, "cut short or damaged", world=world)


def test_import_into_a_packaged_set(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    f = world.file("x.onnx", b"onnx")
    fails(capsys, ["models", "import", "magenta.predictor", str(f)], 1, "nothing to import", world=world)


def test_import_never_moves_or_changes_the_source(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    f = world.file("mine.pth", _nin_bytes())
    os.utime(f, (1_000_000_000, 1_000_000_000))
    before = cli_proc.snapshot(world.user)
    assert main(["models", "import", "nin.caffe", str(f)]) == 0
    assert main(["models", "import", "nin.caffe", str(f), "--force"]) == 0
    assert cli_proc.snapshot(world.user) == before
    assert f.stat().st_mtime == 1_000_000_000
    cached = world.home / "weights" / "nin.caffe" / NIN_FILE
    assert capsys.readouterr().out.splitlines() == [str(cached), str(cached)]
    assert cached.read_bytes() == f.read_bytes() and not cached.samefile(f)
    assert not list(cached.parent.glob(".*"))  # no temporary left beside it


def test_import_over_an_installed_set_needs_force(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    first = world.file("first.pth", _nin_bytes(seed=0))
    assert main(["models", "import", "nin.caffe", str(first)]) == 0
    capsys.readouterr()
    second = world.file("second.pth", _nin_bytes(seed=1))
    fails(capsys, ["models", "import", "nin.caffe", str(second)], 1, "already installed", "--force", world=world)
    assert (world.home / "weights" / "nin.caffe" / NIN_FILE).read_bytes() == first.read_bytes()  # not replaced


# --- path and verify ----------------------------------------------------------------------------------------------


def test_path_of_a_set_not_installed(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, ["models", "path", "nin.caffe"], 1, "not installed", "impasto models download nin.caffe",
          world=world)  # fmt: skip


def test_verify_a_set_not_installed(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, ["models", "verify", "vgg16.caffe"], 1, "not installed", "impasto models import vgg16.caffe",
          world=world)  # fmt: skip


@pytest.mark.parametrize("name", [None, "nin.caffe"])
def test_verify_a_corrupted_installed_file(world: World, capsys: pytest.CaptureFixture[str], name: str | None
                                          ) -> None:  # fmt: skip
    f = world.file("mine.pth", _nin_bytes())
    assert main(["models", "import", "nin.caffe", str(f)]) == 0
    assert main(["models", "verify", *([name] if name else [])]) == 0
    assert "ok      nin.caffe" in capsys.readouterr().out
    cached = world.home / "weights" / "nin.caffe" / NIN_FILE
    cached.write_bytes(cached.read_bytes()[:500])  # the disk went bad
    _, out = fails(capsys, ["models", "verify", *([name] if name else [])], 1, "failed verification: nin.caffe",
                   world=world)  # fmt: skip
    assert f"FAILED  nin.caffe: {cached}" in out  # names the file


# --- download -----------------------------------------------------------------------------------------------------


def test_download_404(world: World, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, ["models", "download", "nin.caffe", "--url", f"{server.base}/gone.pth", "-q"], 1, "HTTP 404",
          world=world)  # fmt: skip


def test_download_without_network(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/{NIN_FILE}"
    fails(capsys, ["models", "download", "nin.caffe", "--url", url, "-q"], 1, "connection refused",
          "impasto models import nin.caffe FILE", world=world)  # fmt: skip


def test_download_cut_short(world: World, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    server.files[NIN_FILE] = _nin_bytes()
    fails(capsys, ["models", "download", "nin.caffe", "--url", f"{server.base}/truncated/{NIN_FILE}", "-q"], 1,
          "download of 'nin.caffe'", world=world)  # fmt: skip


def test_download_of_a_different_file_than_the_canonical_one(world: World, server: Server,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    server.files["vgg16.pth"] = _vgg_bytes(tw.VGG16_BLOCKS)
    fails(capsys, ["models", "download", "vgg16.caffe", "--url", f"{server.base}/vgg16.pth", "-q"], 1,
          "wrong checksum", "00b39a1b", world=world)  # fmt: skip


def test_download_of_a_file_in_the_wrong_format(world: World, server: Server,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    server.files["junk.pth"] = _noise(2048)
    fails(capsys, ["models", "download", "nin.caffe", "--url", f"{server.base}/junk.pth", "-q"], 2,
          "not a PyTorch file at all", world=world)  # fmt: skip


def test_download_with_too_few_urls(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fails(capsys, ["models", "download", "biggan-deep.128", "--url", "http://127.0.0.1:9/x", "-q"], 1,
          "needs 2 URL(s), got 1", world=world)  # fmt: skip


def test_killed_download_leaves_nothing_at_the_final_name(world: World, server: Server) -> None:
    data = _nin_bytes()
    server.files[NIN_FILE] = data
    proc = cli_proc.Running(["models", "download", "nin.caffe", "--url", f"{server.base}/slow/{NIN_FILE}", "-q"],
                            env={"IMPASTO_HOME": str(world.home)})  # fmt: skip
    try:
        assert server.half_sent.wait(120), proc.err
    finally:
        proc.send(signal.SIGKILL)
    assert proc.finish().code == -signal.SIGKILL
    assert not (world.home / "weights" / "nin.caffe").exists()  # nothing at (or beside) the final name
    assert list(world.home.glob(".download-*"))  # the partial download lies in its staging folder only
    # the next download works and removes the killed one's staging folder
    assert main(["models", "download", "nin.caffe", "--url", f"{server.base}/{NIN_FILE}", "-q"]) == 0
    assert (world.home / "weights" / "nin.caffe" / NIN_FILE).read_bytes() == data
    assert not list(world.home.glob(".download-*"))
    assert [v.ok for v in api.models.verify("nin.caffe")] == [True]


# --- the cache folder itself --------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["models", "list"], ["models", "import", "nin.caffe", "USER"], ["models", "path",
                                  "vgg19.caffe"]])  # fmt: skip
def test_impasto_home_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                argv: list[str]) -> None:  # fmt: skip
    home = tmp_path / "home"
    home.write_bytes(b"not a folder")
    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.pth").write_bytes(_nin_bytes())
    monkeypatch.setenv("IMPASTO_HOME", str(home))
    before = cli_proc.snapshot(tmp_path)
    argv = [str(user / "mine.pth") if a == "USER" else a for a in argv]
    fails(capsys, argv, 2, f"IMPASTO_HOME ({home}) is a file, not a folder")
    assert cli_proc.snapshot(tmp_path) == before


@pytest.fixture
def read_only_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """IMPASTO_HOME on a read-only tmpfs (chmod does not stop root, a read-only mount does)."""
    with filesystems.tmpfs(tmp_path / "ro-home", "ro,size=1m") as home:
        monkeypatch.setenv("IMPASTO_HOME", str(home))
        yield home


def test_unwritable_impasto_home(read_only_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = tmp_path / "user"
    user.mkdir()
    f = user / "mine.pth"
    f.write_bytes(_nin_bytes())
    before = cli_proc.snapshot(user)
    fails(capsys, ["models", "import", "nin.caffe", str(f)], 1, "Read-only file system", "IMPASTO_HOME")
    fails(capsys, ["models", "download", "nin.caffe", "--url", "http://127.0.0.1:9/x", "-q"], 1, "Read-only")
    assert cli_proc.snapshot(user) == before
    assert main(["models", "list"]) == 0  # reading the cache still works
    assert "nin.caffe" in capsys.readouterr().out
