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
    from impasto.events import Preview, Progress
    from impasto.gatys.config import PaintConfig
    from impasto.gatys.optimize import evaluate, paint, prepare

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    keep_freed_memory()
    device = torch.device(spec["device"])
    if spec.get("photos"):  # the real photos (benchmarks only): tubingen in the style of the starry night
        from PIL import Image

        folder = Path(spec["photos"])
        content = Image.open(folder / "tubingen.jpg").convert("RGB")
        style = Image.open(folder / "starry_night.jpg").convert("RGB")
    else:
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
        save_iter=int(spec.get("save_iter", 0)),
        init=spec.get("init", "random"),
        gpu="c" if device.type == "cpu" else str(device.index or 0),
    )
    marks: list[tuple[int, float, float, float]] = []  # (step, wall, cpu, loss)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    shots: list[tuple[int, float, torch.Tensor]] = []  # (step, wall since start, (3, H, W) in [0, 1]) of Previews

    def callback(event: object) -> None:
        if isinstance(event, Progress):
            sync()
            marks.append((event.step, time.perf_counter(), time.process_time(), event.losses["total"]))
        elif isinstance(event, Preview) and event.raw is not None and spec.get("exact_curve"):
            shots.append((event.step, time.perf_counter() - t0, event.raw.clone()))

    rss_before = _rss_mb("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0, c0 = time.perf_counter(), time.process_time()
    start = None
    if cfg.init == "stylized":  # the fast network's stylised start, as impasto.api.paint makes it (timed too)
        from impasto.fast.magenta import stylized_start

        start = stylized_start(content, [style], None, cfg.image_size, device)
    result = paint(content, [style], cfg, callback=callback, init_image=start)
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
        problem = prepare(content, [style], cfg.replace(fast=False, scales=None, init="random"))
        with torch.no_grad():
            out["final_loss_fp32"] = float(evaluate(problem, result.raw.to(problem.device))[0])
    if spec.get("exact_curve"):
        # Every Preview (and the result) re-evaluated on the exact fp32 path at full size, from the [0, 1] picture
        # (clamped, as a saved image is): the loss a user's image has, the same evaluation for every run.
        from impasto.gatys.preprocess import preprocess

        problem = prepare(content, [style], cfg.replace(fast=False, scales=None, scale_iterations=None, init="random"))
        final01 = result.image[0]
        points = [*shots, (result.steps, total_wall, final01)]
        exact = []
        with torch.no_grad():
            for step, wall, pic in points:
                x = preprocess(pic.unsqueeze(0).clamp(0, 1), problem.contract).to(problem.device)
                exact.append([step, round(wall, 4), float(evaluate(problem, x)[0])])
        out["exact_curve"] = exact  # [step, wall seconds since the start, exact fp32 loss]
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


def print_size(args: argparse.Namespace) -> dict:
    """The 4016x2213 case (issue 12): the REAL ``impasto paint`` at print size with the memory plan chosen for it.

    One fresh CLI process per network (random full-size VGG-19 in neural-style-pt's format, and the offline default
    MobileNetV2 when installed), ``--print-size-iters`` iterations: its one-line memory plan, the process's peak
    resident memory (``ru_maxrss`` of the child), the wall time and the run's own elapsed seconds (targets included:
    per iteration it is an upper bound). ``--max-memory`` is passed on when given.
    """
    import resource

    from compare_neural_style_pt import FILE_NAMES, random_weights, test_image

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    weights = Path(args.weights) if args.weights else work / FILE_NAMES["vgg19"]
    if not weights.exists():
        random_weights(weights, "vgg19", classifier=False)
    w, h = args.print_size_content
    content, style = work / f"print-content-{w}x{h}.png", work / "print-style.png"
    if not content.exists():
        test_image(content, (w, h), 1)
    if not style.exists():
        test_image(style, (1024, 1024), 2)
    nets = {"vgg19-random": ["--model-file", str(weights)], "offline-default": []}
    runs = {}
    for name in args.print_size_networks:
        out = work / f"print-{name}.png"
        cmd = [
            sys.executable, "-m", "impasto", "paint", str(content), "--style", str(style), "-o", str(out),
            "--overwrite", "--image-size", str(args.print_size), "--num-iterations", str(args.print_size_iters),
            "--save-iter", "0", "--print-iter", "0", "--gpu", "c" if args.device == "cpu" else "0", "--seed", "0",
            *nets[name], *(["--max-memory", args.max_memory] if args.max_memory else []),
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        plan = [ln.split("impasto paint: ", 1)[-1] for ln in done.stderr.splitlines() if "memory plan:" in ln]
        runs[name] = {
            "exit": done.returncode,
            "memory_plan": plan[0] if plan else None,
            # ru_maxrss of the children is the largest child so far: valid when this run is the largest
            "peak_rss_gb": peak / 1e6 if peak > before else None,
            "wall_s": wall,
            "result": done.stdout.strip().splitlines()[-1:] or None,
            "error": done.stderr.strip().splitlines()[-1:] if done.returncode else None,
        }
    return {
        "case": "print_size",
        "size": args.print_size,
        "content": [w, h],
        "iterations": args.print_size_iters,
        "load_average": os.getloadavg(),
        "runs": runs,
    }


def equal_loss(args: argparse.Namespace, base: dict) -> dict:
    """Time to reach neural-style-pt's ``--equal-loss-iters`` loss at ``--equal-loss-size``, judged the same way.

    The reference is impasto's exact path, single scale, neural-style-pt's settings: step for step upstream's run
    (benchmarks/compare_neural_style_pt.py reports their losses equal) and per iteration at least as fast, so its
    time is at most neural-style-pt's (the ratios below are conservative). The candidate is the fast path with
    ``scales`` and one budget; its final-scale images are re-evaluated every ``--equal-loss-every`` steps on the
    exact fp32 path at full size (the same evaluation as the reference's final image, from the clamped [0, 1]
    picture), and its time to target is the wall time (since the run started, targets and all scales included) of
    the first one at or below the reference's final loss. The evaluation itself is done after the run, untimed.
    """
    photos = args.photos if args.photos and Path(args.photos, "tubingen.jpg").exists() else None
    common = {**base, "size": args.equal_loss_size, "optimizer": "lbfgs", "photos": photos, "exact_curve": True}
    out: dict = {
        "size": args.equal_loss_size,
        "images": "tubingen + starry_night" if photos else "synthetic",
        "reference": {"iterations": args.equal_loss_iters, "path": "exact fp32, single scale (= neural-style-pt)"},
        "candidate": {
            "budget": args.equal_loss_budget,
            "scales": args.equal_loss_scales,
            "inits": args.equal_loss_init,
            "fast": True,
        },
        "repeats": [],
    }
    inits = [i.strip() for i in args.equal_loss_init.split(",") if i.strip()]
    for _ in range(args.repeats):
        ref = run_worker({**common, "iterations": args.equal_loss_iters, "fast": False})
        target = ref["exact_curve"][-1][2]
        for init in inits:  # every candidate against the same reference run
            cand = run_worker(
                {
                    **common,
                    "iterations": args.equal_loss_budget,
                    "fast": True,
                    "scales": args.equal_loss_scales,
                    "init": init,
                    "save_iter": args.equal_loss_every,
                }
            )
            reached = next((wall for _step, wall, loss in cand["exact_curve"] if loss <= target), None)
            row = {
                "init": init,
                "target_loss": target,
                "reference_wall_s": ref["total_wall_s"],
                "reference_cpu_s": ref["total_cpu_s"],
                "candidate_wall_s": cand["total_wall_s"],
                "candidate_final_exact_loss": cand["exact_curve"][-1][2],
                "candidate_scales": cand["scales"],
                "time_to_target_s": reached,
                "speedup_to_equal_loss": ref["total_wall_s"] / reached if reached else None,
                "candidate_exact_curve": cand["exact_curve"],
            }
            out["repeats"].append(row)
            print(
                f"equal loss: reference {ref['total_wall_s']:.1f} s to {target:.6g}; multi-scale fast, init {init}: "
                f"{f'reached it at {reached:.1f} s' if reached else 'did not reach it'} "
                f"(final {row['candidate_final_exact_loss']:.6g}, run {cand['total_wall_s']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    ratios = [r["speedup_to_equal_loss"] for r in out["repeats"] if r["speedup_to_equal_loss"]]
    out["speedup_range"] = [min(ratios), max(ratios)] if ratios else None
    return out


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
    ap.add_argument("--equal-loss", action="store_true", help="also: time to reach neural-style-pt's final loss")
    ap.add_argument("--equal-loss-size", type=int, default=512)
    ap.add_argument("--equal-loss-iters", type=int, default=500, help="the reference run's iterations")
    ap.add_argument("--equal-loss-budget", type=int, default=500, help="the multi-scale run's num_iterations")
    ap.add_argument("--equal-loss-scales", default="auto", help="the multi-scale run's scales")
    ap.add_argument("--equal-loss-init", default="random", help="the multi-scale runs' inits, comma-separated")
    ap.add_argument("--equal-loss-every", type=int, default=5, help="exact loss of the final scale every N steps")
    ap.add_argument("--repeats", type=int, default=1, help="equal-loss: run each configuration this many times")
    ap.add_argument("--no-grid", action="store_true", help="skip the per-size grid (with --equal-loss, say)")
    ap.add_argument(
        "--photos",
        default=str(ROOT.parent / "shared" / "data" / "images" / "neural-style-pt"),
        help="folder with tubingen.jpg and starry_night.jpg for the equal-loss runs ('' : synthetic images)",
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--print-size",
        type=int,
        nargs="?",
        const=4016,
        default=None,
        help="only the print-size case: impasto paint at this size (default 4016) on a 4016x2213 input",
    )
    ap.add_argument("--print-size-iters", type=int, default=2)
    ap.add_argument("--print-size-content", type=int, nargs=2, default=[4016, 2213], metavar=("W", "H"))
    ap.add_argument(
        "--print-size-networks",
        nargs="+",
        default=["vgg19-random", "offline-default"],
        choices=["vgg19-random", "offline-default"],
    )
    ap.add_argument("--max-memory", default=None, help="passed on to impasto paint in the print-size case")
    args = ap.parse_args()
    if args.print_size:
        report = print_size(args)
        text = json.dumps(report, indent=1)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text)
        print(text)
        return 0
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
    nets = [("vgg19", {"weights": weights})] if not args.no_grid else []
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
    if args.equal_loss:
        report["equal_loss"] = equal_loss(args, base)
    report["run"]["load_average_end"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
