"""Painting by optimisation: seconds per iteration and peak memory, exact fp32 vs the fast path, L-BFGS and Adam.

    .venv/bin/python benchmarks/paint.py --device cpu --out bench-results/paint.json          # full grid + figure
    .venv/bin/python benchmarks/paint.py --device cpu --quick --out bench-results/paint.json  # small 2-core box
    .venv/bin/python benchmarks/paint.py --device cuda --out bench-results/paint-cuda.json

The network is a full-size VGG-19 with random He-initialised weights in neural-style-pt's file format (written once
into ``--work``, like benchmarks/compare_neural_style_pt.py: random values run at the speed of the real ones), or
``--weights FILE``; ``--mobilenet`` adds the offline MobileNetV2 default. Every measurement runs in a fresh
subprocess, so peak memory is per configuration: CPU peak resident memory (VmHWM) minus the process's resident
memory before the run, CUDA ``torch.cuda.max_memory_allocated``. Seconds per iteration are taken between the end of
the ``--warmup``-th step and the last step (wall and process CPU time; CPU time is the steadier figure on a shared
machine). Each fast-path run also reports its final loss re-evaluated on the exact fp32 path, beside the fp32 run's
(same seed, same iterations).

The "figure" section reproduces the seed article's run -- 500 L-BFGS iterations at 512 px -- in fp32, on the fast
path, and multi-scale (``scales=auto``) on the fast path with the same total iterations, recording the loss curve
against time so the JSON says when each reaches the single-scale fp32 run's final loss. ``--quick`` cuts sizes,
iterations and the figure (the JSON's "run" section says exactly what ran).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _rss_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process in MiB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _images(size: int):  # noqa: ANN202
    from compare_neural_style_pt import test_image

    folder = Path(tempfile.mkdtemp(prefix="impasto-bench-"))
    test_image(folder / "content.png", (size, size * 3 // 4), 1)
    test_image(folder / "style.png", (size, size), 2)
    from PIL import Image

    return Image.open(folder / "content.png").convert("RGB"), Image.open(folder / "style.png").convert("RGB")


def worker(spec: dict) -> dict:
    """One paint run in this process; returns timings, memory and the loss curve."""
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from impasto.devices import keep_freed_memory
    from impasto.events import Progress
    from impasto.gatys.config import PaintConfig
    from impasto.gatys.optimize import evaluate, paint, prepare

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    keep_freed_memory()
    device = torch.device(spec["device"])
    content, style = _images(spec["size"])
    cfg = PaintConfig(
        model=spec.get("model"),
        model_file=spec.get("weights"),
        image_size=spec["size"],
        num_iterations=spec["iterations"],
        optimizer=spec["optimizer"],
        fast=spec["fast"],
        scales=spec.get("scales"),
        scale_iterations=spec.get("scale_iterations"),
        seed=1,
        print_iter=0,
        save_iter=0,
        gpu="c" if device.type == "cpu" else str(device.index or 0),
    )
    marks: list[tuple[int, float, float, float]] = []  # (step, wall, cpu, loss)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def callback(event: object) -> None:
        if isinstance(event, Progress):
            sync()
            marks.append((event.step, time.perf_counter(), time.process_time(), event.losses["total"]))

    rss_before = _rss_mb("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0, c0 = time.perf_counter(), time.process_time()
    result = paint(content, [style], cfg, callback=callback)
    total_wall, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = {"peak_rss_mb": _rss_mb("VmHWM"), "rss_before_mb": rss_before}
    peak["peak_rss_delta_mb"] = peak["peak_rss_mb"] - rss_before
    if device.type == "cuda":
        peak["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    w = min(spec["warmup"], len(marks) - 1)
    n = marks[-1][0] - marks[w - 1][0] if w > 0 else len(marks)
    first = marks[w - 1] if w > 0 else (0, t0, c0, float("nan"))
    out = {
        **{k: spec[k] for k in ("size", "optimizer", "fast", "iterations") if k in spec},
        "scales": list(result.config.scales) if result.config.scales else None,
        "image_shape": list(result.image.shape[-2:]),
        "model": result.model,
        "s_per_iter_wall": (marks[-1][1] - first[1]) / n,
        "s_per_iter_cpu": (marks[-1][2] - first[2]) / n,
        "timed_iterations": n,
        "total_wall_s": total_wall,
        "total_cpu_s": total_cpu,
        "final_loss_reported": result.final_loss,
        **peak,
    }
    if spec.get("fp32_loss"):
        problem = prepare(content, [style], cfg.replace(fast=False, scales=None))
        with torch.no_grad():
            out["final_loss_fp32"] = float(evaluate(problem, result.raw.to(problem.device))[0])
    if spec.get("curve"):
        out["curve"] = [[m[0], round(m[1] - t0, 4), round(m[2] - c0, 4), m[3]] for m in marks]  # step, wall, cpu, loss
    return out


def run_worker(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_to_loss(curve: list, target: float, last_scale_from: int | None = None) -> float | None:
    """Wall seconds at which ``curve`` first reaches ``target`` (only steps at the final scale count)."""
    for step, wall, _cpu, loss in curve:
        if last_scale_from is not None and step < last_scale_from:
            continue
        if loss <= target:
            return wall
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="image sizes (default 256 512 1024)")
    ap.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"])
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per configuration (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--weights", default=None, help="a VGG .pth in neural-style-pt's format (default: random VGG-19)")
    ap.add_argument("--mobilenet", action="store_true", help="also time the offline MobileNetV2 default")
    ap.add_argument("--figure-iters", type=int, default=None, help="the figure run's iterations (default 500)")
    ap.add_argument("--figure-size", type=int, default=None, help="the figure run's size (default 512)")
    ap.add_argument("--no-figure", action="store_true")
    ap.add_argument("--quick", action="store_true", help="sizes 256 512, 4 timed iterations, figure 100 its at 256")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "impasto-compare"))
    ap.add_argument("--out", default=None, help="write the JSON here too")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    sizes = args.sizes or ([256, 512] if args.quick else [256, 512, 1024])
    iters = args.iters or (4 if args.quick else 10)
    fig_iters = args.figure_iters or (100 if args.quick else 500)
    fig_size = args.figure_size or (256 if args.quick else 512)
    weights = args.weights
    if weights is None:
        from compare_neural_style_pt import FILE_NAMES, random_weights

        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        weights = str(work / FILE_NAMES["vgg19"])
        if not Path(weights).exists():
            random_weights(Path(weights), "vgg19")
    base = {"device": args.device, "warmup": args.warmup, "threads": args.threads, "weights": weights}

    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from impasto.gatys.optimize import FAST_LBFGS_EXACT_STEPS

    report: dict = {
        "run": {
            "device": args.device,
            "quick": args.quick,
            "sizes": sizes,
            "optimizers": args.optimizers,
            "timed_iterations": iters,
            "warmup_iterations": args.warmup,
            "lbfgs_untimed_first_steps": max(args.warmup, FAST_LBFGS_EXACT_STEPS + 1),
            "weights": "random full-size VGG-19 (neural-style-pt format)" if args.weights is None else args.weights,
            "figure": None if args.no_figure else {"size": fig_size, "iterations": fig_iters},
            "torch": torch.__version__,
            "threads": args.threads or torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "load_average_start": os.getloadavg(),
        },
        "grid": [],
    }
    if args.device == "cuda" and torch.cuda.is_available():
        report["run"]["gpu"] = torch.cuda.get_device_name(0)
    nets = [("vgg19", {"weights": weights})]
    if args.mobilenet:
        nets.append(("mobilenet", {"weights": None}))  # no model, no file: the offline default
    for net_name, net_spec in nets:
        for size in sizes:
            for opt in args.optimizers:
                pair = {}
                for fast in (False, True):  # back to back, so both see the same machine load
                    spec = {**base, **net_spec, "size": size, "optimizer": opt, "fast": fast}
                    if opt == "lbfgs":  # fast L-BFGS's first FAST_LBFGS_EXACT_STEPS are exact fp32: untimed, and
                        # both runs of the pair go the same number of steps, so their final losses compare
                        spec["warmup"] = max(args.warmup, FAST_LBFGS_EXACT_STEPS + 1)
                    spec.update(iterations=iters + spec["warmup"], fp32_loss=True)
                    r = run_worker(spec)
                    r["net"] = net_name
                    pair[fast] = r
                    report["grid"].append(r)
                    print(
                        f"{net_name} {size}px {opt} {'fast' if fast else 'fp32'}: {r['s_per_iter_wall']:.3f} s/it "
                        f"wall, {r['s_per_iter_cpu']:.3f} CPU s/it, peak +{r['peak_rss_delta_mb']:.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
                pair[True]["speedup_wall_vs_fp32"] = pair[False]["s_per_iter_wall"] / pair[True]["s_per_iter_wall"]
                pair[True]["speedup_cpu_vs_fp32"] = pair[False]["s_per_iter_cpu"] / pair[True]["s_per_iter_cpu"]
                pair[True]["final_loss_fp32_rel_diff"] = (
                    pair[True]["final_loss_fp32"] / pair[False]["final_loss_fp32"] - 1
                )

    if not args.no_figure:
        from impasto.gatys.config import auto_scales

        scales = auto_scales(fig_size)
        # Coarse scales get half the iterations, the final one all of them; time-to-loss counts from the start.
        scale_iters = [max(1, fig_iters // 2)] * (len(scales) - 1) + [fig_iters]
        runs = {
            "single_fp32": {"fast": False},
            "single_fast": {"fast": True},
            "multiscale_fast": {
                "fast": True,
                "scales": ",".join(map(str, scales)),
                "scale_iterations": ",".join(map(str, scale_iters)),
            },
        }
        fig: dict = {
            "size": fig_size,
            "iterations": fig_iters,
            "scales": list(scales),
            "scale_iterations": scale_iters,
            "runs": {},
        }
        for name, extra in runs.items():
            spec = {**base, "size": fig_size, "optimizer": "lbfgs", "iterations": fig_iters, **extra}
            r = run_worker({**spec, "curve": True, "fp32_loss": True})
            fig["runs"][name] = r
            print(
                f"figure {name}: {r['total_wall_s']:.1f} s, final fp32 loss {r['final_loss_fp32']:.6g}", file=sys.stderr
            )
        target = fig["runs"]["single_fp32"]["final_loss_fp32"]
        last_from = sum(scale_iters[:-1]) + 1
        fig["target_loss"] = target
        fig["time_to_target_s"] = {
            "single_fp32": fig["runs"]["single_fp32"]["curve"][-1][1],
            "single_fast": time_to_loss(fig["runs"]["single_fast"]["curve"], target),
            "multiscale_fast": time_to_loss(fig["runs"]["multiscale_fast"]["curve"], target, last_from),
        }
        report["figure"] = fig
    report["run"]["load_average_end"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
