"""The Ray backend on Ray's own test cluster: three nodes on loopback (a head and two workers, one CPU each, small
object stores, no dashboard), started once for the module.

A folder finishes with every output exactly once and equal to the single-process result; Ctrl-C through the real
CLI (``--ray ADDRESS``, a real SIGINT) stops the job with the finished outputs kept and exit code 130; removing a
worker node half way still finishes with every output exactly once. Skipped only where Ray is not installed.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import cli_proc
import pytest
import tiny_weights as tw

from impasto import api
from impasto.cli.main import main
from impasto.errors import ConfigError
from impasto.media import stray_parts

ray = pytest.importorskip(
    "ray", reason="Ray is not installed (pip install 'impasto[ray]'): the Ray backend is untested"
)

STORE = 100 * 1024 * 1024  # object store per node: the tasks pass only paths


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": STORE, "include_dashboard": False},
    )
    nodes = [c.add_node(num_cpus=1, object_store_memory=STORE) for _ in range(2)]
    c.wait_for_nodes()
    c.worker_nodes_list = nodes
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def _photos(folder: Path, n: int, size: tuple[int, int] = (48, 40)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"p{i:02d}.png" for i in range(n)]
    for i, p in enumerate(paths):
        tw.image(p, size=size, seed=i)
    return paths


def _outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@pytest.fixture
def one_thread():  # noqa: ANN201
    """This process's torch at one thread, as each one-CPU actor runs (CPU sums may depend on the thread count)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_folder_on_the_cluster_every_output_once_equal_to_one_process(
    cluster, tmp_path: Path, capsys: pytest.CaptureFixture, one_thread: None
) -> None:  # noqa: ANN001
    src = tmp_path / "photos"
    _photos(src, 6)
    tw.image(tmp_path / "style.png", size=(40, 40), seed=9)
    common = ["stylize", str(src), "--style", str(tmp_path / "style.png"), "--device", "cpu", "-q"]
    assert main([*common, "--out-dir", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert main([*common, "--out-dir", str(tmp_path / "ray"), "--ray", cluster.address, "--workers", "3"]) == 0
    printed = capsys.readouterr().out.split()
    names = _outputs(tmp_path / "one")
    assert len(names) == 6 and _outputs(tmp_path / "ray") == names
    assert sorted(printed) == sorted(str(tmp_path / "ray" / n) for n in names)  # each exactly once
    for n in names:
        assert (tmp_path / "ray" / n).read_bytes() == (tmp_path / "one" / n).read_bytes(), n
    assert not ray.is_initialized()  # the command disconnected again


def test_ctrl_c_cancels_the_job_on_the_cluster(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    src, out = tmp_path / "photos", tmp_path / "out"
    _photos(src, 30, size=(96, 96))
    run = cli_proc.Running(["stylize", str(src), "--preset", "3", "--out-dir", str(out), "--device", "cpu",
                            "--ray", cluster.address, "--workers", "3"])  # fmt: skip
    run.wait_for(r"_stylized\.png", stream="out", timeout=180)  # a first image finished on some node
    t0 = time.monotonic()
    run.send(signal.SIGINT)
    done = run.finish(timeout=120)
    assert done.code == 130, done.err
    assert "Traceback" not in done.err
    printed = done.out.split()
    assert 1 <= len(printed) < 30 and len(set(printed)) == len(printed)
    m = re.search(r"stopped; (\d+) of 30 images written", done.err)
    assert m and int(m.group(1)) == len(printed), done.err
    assert set(Path(p).name for p in printed) <= set(_outputs(out)) and len(_outputs(out)) < 30
    assert stray_parts(out) == []
    assert time.monotonic() - t0 < 60  # stopped, not run to the end


def test_a_bad_address_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tw.image(tmp_path / "p.png", size=(40, 40))
    before = cli_proc.snapshot(tmp_path)
    code = main(["stylize", str(tmp_path / "p.png"), "--preset", "3", "-o", str(tmp_path / "out.png"), "--ray",
                 "127.0.0.1:1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("impasto: error: cannot reach the Ray cluster at '127.0.0.1:1'"), err
    assert cli_proc.snapshot(tmp_path) == before
    with pytest.raises(ConfigError, match="cannot reach"):
        api.open_executor(2, ray="127.0.0.1:1", device="cpu")


def test_removing_a_node_half_way_still_makes_every_output_once(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    src, out = tmp_path / "photos", tmp_path / "out"
    out.mkdir()
    pairs = [(p, out / f"{p.stem}_stylized.png") for p in _photos(src, 12, size=(96, 96))]
    tasks = api.stylize_tasks(pairs, preset="3", device="cpu")
    results = []
    with api.open_executor(3, ray=cluster.address, device="cpu") as ex:
        for r in ex.run(tasks):
            results.append(r)
            if len(results) == 3:
                cluster.remove_node(cluster.worker_nodes_list[0])  # its actor (and the task it had) is lost
    assert sorted(r.key for r in results) == sorted(str(d) for _, d in pairs)  # each result exactly once
    assert _outputs(out) == sorted(d.name for _, d in pairs)
    # the removed node's worker may have died mid-write: its temporary file can remain (the CLI removes such files
    # when the job ends), but only beside an output that was then made whole by the retry
    for part in stray_parts(out):
        assert part.name.split(".")[1] + ".png" in _outputs(out), part


def test_a_sweep_on_the_cluster_every_entry_once_equal_to_one_process(
    cluster, tmp_path: Path, capsys: pytest.CaptureFixture, one_thread: None
) -> None:  # noqa: ANN001
    import numpy as np
    from PIL import Image

    weights = tw.write(tw.vgg_state(), tmp_path / "weights.pth")
    tw.image(tmp_path / "c.png", size=(40, 32), seed=0)
    tw.image(tmp_path / "s.png", size=(36, 36), seed=1)
    grid = "style_weight=1e2,1e4 seed=0,1"
    common = ["sweep", str(tmp_path / "c.png"), "-s", str(tmp_path / "s.png"), "--grid", grid,
              "--model-file", str(weights), "--image-size", "32", "--num-iterations", "3", "--gpu", "c"]  # fmt: skip
    assert main([*common, "-o", str(tmp_path / "one")]) == 0
    assert main([*common, "-o", str(tmp_path / "ray"), "--ray", cluster.address, "--workers", "3"]) == 0
    capsys.readouterr()
    one = sorted(p.name for p in (tmp_path / "one").glob("*.png"))
    assert len(one) == 4 and sorted(p.name for p in (tmp_path / "ray").glob("*.png")) == one
    assert stray_parts(tmp_path / "ray") == []
    for name in one:
        with Image.open(tmp_path / "one" / name) as a, Image.open(tmp_path / "ray" / name) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b)), name
