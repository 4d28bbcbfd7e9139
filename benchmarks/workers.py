"""Workers scaling: folder throughput with 1 and 2 local pool workers and a two-node local Ray cluster, Ray's
overhead against the local pool, and a sweep of 12 paint settings.

    .venv/bin/python benchmarks/workers.py --out bench-results/workers.json                # the issue's figures
    .venv/bin/python benchmarks/workers.py --photos 8 --size 512 --sweep-iterations 5     # a small shared box
    .venv/bin/python benchmarks/workers.py --device cuda --out bench-results/workers-cuda.json

Folder: ``--photos`` photo-like images (default 64) at ``--size`` px (default 1024, longest side) stylised with
Magenta preset 7 (packaged weights) through ``impasto.workers.tasks:stylize_image``, exactly the tasks
``impasto stylize --workers`` sends. Each configuration first runs one task per worker (starting every worker and
loading its model: ``startup_s``), then the whole folder: ``images_per_s`` is the steady throughput. The Ray
cluster is ``ray.cluster_utils.Cluster`` (the test cluster Ray ships): a head and one more node on loopback, each
with half the cores (or one GPU each where there are two), one actor per node. ``ray_overhead`` compares it with
the two-worker local pool: the relative slowdown and the extra seconds per task.

Sweep: ``impasto.api.sweep`` of 12 settings (style_weight x content_weight x seed) at ``--sweep-size`` px (default
256) for ``--sweep-iterations`` L-BFGS iterations, in this process and over 2 local workers: entries per second.

Runs unchanged on a CPU or a GPU (``--device``). Writes JSON (to ``--out``, and to stdout).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from impasto import api  # noqa: E402
from impasto.bench import machine_info, photo, stylize_folder_throughput  # noqa: E402
from impasto.devices import resolve_device  # noqa: E402
from impasto.workers import cpu_cores, device_count  # noqa: E402
from impasto.workers.local import LocalPoolExecutor  # noqa: E402

SWEEP_GRID = "style_weight=1e2,1e3,1e4 content_weight=1,5 seed=0,1"  # 3 x 2 x 2 = 12 entries


def folder(inputs: list[Path], out: Path, size: int, device: str, ray: bool) -> dict:
    rows = []
    for n in (1, 2):
        with LocalPoolExecutor(n, device=device) as ex:
            got = stylize_folder_throughput(ex, inputs, out, size=size, device=device)
        rows.append({"backend": "local", "workers": n, "nodes": 1, **got})
        print(f"local pool, {n} worker(s): {got['images_per_s']:.3f} images/s", file=sys.stderr)
    result: dict = {"results": rows, "speedup_2_local": rows[1]["images_per_s"] / rows[0]["images_per_s"]}
    if not ray:
        result["ray"] = "skipped (--no-ray)"
        return result
    try:
        import ray as ray_module
        from ray.cluster_utils import Cluster
    except ImportError:
        result["ray"] = "skipped: Ray is not installed (pip install 'impasto[ray]')"
        return result
    gpus = device_count(device)
    per_node = {"num_cpus": max(1, cpu_cores() // 2), "num_gpus": 1 if gpus >= 2 else 0}
    cluster = Cluster(initialize_head=True, head_node_args=per_node)
    cluster.add_node(**per_node)
    try:
        cluster.wait_for_nodes()
        t0 = time.perf_counter()
        with api.open_executor(2, cluster.address, device=device) as ex:
            connect = time.perf_counter() - t0
            got = stylize_folder_throughput(ex, inputs, out, size=size, device=device)
            description = ex.description
        ray_row = {"backend": "ray", "workers": 2, "nodes": 2, "connect_s": connect, "executor": description, **got}
        rows.append(ray_row)
        print(f"Ray, 2 nodes: {got['images_per_s']:.3f} images/s", file=sys.stderr)
        local2 = rows[1]
        result["ray_overhead"] = {
            "slowdown_vs_local_2": local2["images_per_s"] / ray_row["images_per_s"] - 1.0,
            "extra_s_per_task": (ray_row["seconds"] - local2["seconds"]) / len(inputs),
            "extra_startup_s": ray_row["startup_s"] + connect - local2["startup_s"],
        }
        result["ray_version"] = ray_module.__version__
    finally:
        if ray_module.is_initialized():
            ray_module.shutdown()
        cluster.shutdown()
    return result


def sweep(work: Path, size: int, iterations: int, device: str) -> dict:
    from impasto.gatys.config import PaintConfig

    content, style = work / "content.png", work / "style.png"
    photo(size, seed=11).save(content)
    photo(size, seed=12).save(style)
    gpu = "c" if resolve_device(device).type == "cpu" else "0"
    config = PaintConfig(image_size=size, num_iterations=iterations, print_iter=0, save_iter=0, gpu=gpu)
    rows = []
    for n in (1, 2):
        plan = api.sweep_plan(content, style, SWEEP_GRID, work / f"sweep{n}", config)
        t0 = time.perf_counter()
        if n == 1:
            result = api.sweep(plan)
        else:
            with api.open_executor(n, device=device) as ex:
                result = api.sweep(plan, executor=ex)
        seconds = time.perf_counter() - t0
        entries = len(plan.entries)
        rows.append({"workers": n, "entries": entries, "seconds": seconds, "entries_per_s": entries / seconds})
        print(f"sweep, {n} worker(s): {entries} entries in {seconds:.1f} s", file=sys.stderr)
        del result
    return {"grid": SWEEP_GRID, "size": size, "iterations": iterations, "results": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--photos", type=int, default=64)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--no-ray", action="store_true", help="skip the two-node Ray cluster")
    p.add_argument("--sweep-size", type=int, default=256)
    p.add_argument("--sweep-iterations", type=int, default=50)
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--out", default="bench-results/workers.json")
    args = p.parse_args(argv)
    device = str(resolve_device(args.device))
    results: dict = {
        "machine": {**machine_info(resolve_device(args.device)), "node": platform.node()},
        "run": {k: v for k, v in vars(args).items() if k != "out"},
    }
    with tempfile.TemporaryDirectory(prefix="impasto-workers-") as tmp:
        work = Path(tmp)
        (work / "in").mkdir()
        (work / "out").mkdir()
        inputs = []
        for i in range(args.photos):
            path = work / "in" / f"photo_{i:03d}.png"
            photo(args.size, seed=i).save(path)
            inputs.append(path)
        results["folder"] = {
            "photos": args.photos, "size": args.size,
            **folder(inputs, work / "out", args.size, device, ray=not args.no_ray),
        }  # fmt: skip
        _write(args.out, results)  # the folder figures stay even if the sweep is stopped
        if args.no_sweep:
            results["sweep"] = "skipped (--no-sweep)"
        else:
            results["sweep"] = sweep(work, args.sweep_size, args.sweep_iterations, device)
    print(_write(args.out, results))
    return 0


def _write(out: str, results: dict) -> str:
    text = json.dumps(results, indent=2)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text + "\n")
    return text


if __name__ == "__main__":
    sys.exit(main())
