"""Run neural-style-pt and ``impasto neural-style`` side by side on the same random VGG-19 and report the differences.

neural-style-pt is not part of impasto and is not committed: fetch it (github.com/ProGamerGov/neural-style-pt) into
a scratch folder and put a small stand-in for the few ``torchvision.transforms`` it uses beside it (Compose,
Resize = PIL bilinear, ToTensor, Lambda, Normalize, ToPILImage), then::

    python benchmarks/compare_neural_style_pt.py --nspt /tmp/nspt --size 64 --iters 20
    python benchmarks/compare_neural_style_pt.py --nspt /tmp/nspt --size 512 --iters 6 --json cmp512.json

A full-size random VGG-19 (or ``--arch vgg16|nin``) in neural-style-pt's file format (``features.N`` +
``classifier.*``, named like the real file because neural-style-pt picks the architecture from the file name) is
written once into ``--work``. Both programs -- and a third run, impasto's fast path (``fast=True``: bf16
channels_last network, impasto's L-BFGS; ``--no-fast`` skips it) -- run as subprocesses with the same flags and
seed on the CPU (``-gpu c``), printing losses every step; the script compares the losses step by step, the final
images, and the seconds per iteration: wall and process CPU time between the first and last printed iteration,
divided by the steps between them (each stdout line is time-stamped inside the child; CPU time is steadier on a
shared machine), and ``speedup_vs_nspt_*`` the ratios (per iteration, neural-style-pt's time over impasto's).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

VGG19 = (64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 512, 512, "P", 512, 512, 512, 512, "P")
VGG16 = (64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P")
# NIN: (position in neural-style-pt's features Sequential, out channels, kernel)
NIN = ((0, 96, 11), (2, 96, 1), (4, 96, 1), (7, 256, 5), (9, 256, 1), (11, 256, 1), (14, 384, 3), (16, 384, 1),
       (18, 384, 1), (22, 1024, 3), (24, 1024, 1), (26, 1000, 1))  # fmt: skip
FILE_NAMES = {"vgg19": "vgg19-d01eb7cb.pth", "vgg16": "vgg16-00b39a1b.pth", "nin": "nin_imagenet.pth"}


def random_weights(path: Path, arch: str, seed: int = 0, classifier: bool = True) -> None:
    """A full-size network with He-initialised random weights, in neural-style-pt's key layout for ``arch``."""
    gen = torch.Generator().manual_seed(seed)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    convs: list[tuple[int, int, int]] = []
    if arch == "nin":
        convs = list(NIN)
    else:
        pos = 0
        for c in VGG19 if arch == "vgg19" else VGG16:
            if c == "P":
                pos += 1
            else:
                convs.append((pos, int(c), 3))
                pos += 2
    cin = 3
    for pos, cout, k in convs:
        sd[f"features.{pos}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (cin * k * k)) ** 0.5
        sd[f"features.{pos}.bias"] = torch.randn(cout, generator=gen) * 0.01
        cin = cout
    if classifier and arch != "nin":
        for i, (o, n) in enumerate(((4096, 25088), (4096, 4096), (1000, 4096))):
            sd[f"classifier.{3 * i}.weight"] = torch.randn(o, n, generator=gen) * 0.01
            sd[f"classifier.{3 * i}.bias"] = torch.zeros(o)
    torch.save(sd, path)


def test_image(path: Path, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    f = rng.uniform(0.02, 0.2, 6)
    arr = np.stack(
        [
            127 + 90 * np.sin(xx * f[0] + yy * f[1]) + rng.normal(0, 20, (h, w)),
            127 + 90 * np.cos(xx * f[2] - yy * f[3]) + rng.normal(0, 20, (h, w)),
            127 + 90 * np.sin((xx + yy) * f[4]) * np.cos(yy * f[5]) + rng.normal(0, 20, (h, w)),
        ],
        axis=-1,
    )
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path)


ITER = re.compile(r"^Iteration (\d+) / (\d+)")
LOSS = re.compile(r"^\s+(Content|Style) (\d+) loss: (\S+)|^\s+Total loss: (\S+)")

# Runs a script or module with every stdout line prefixed by wall-clock and process CPU seconds, so seconds per
# iteration can be read off both programs the same way (CPU time is steadier than wall time on a shared machine).
STAMPER = """
import os, runpy, sys, time
class Stamp:
    def __init__(self, f):
        self.f, self.buf = f, ""
    def write(self, text):
        self.buf += text
        while "\\n" in self.buf:
            line, self.buf = self.buf.split("\\n", 1)
            self.f.write(f"{time.perf_counter():.6f} {time.process_time():.6f} {line}\\n")
            self.f.flush()
        return len(text)
    def flush(self):
        self.f.flush()
    def isatty(self):
        return False
    def __getattr__(self, name):
        return getattr(self.f, name)
sys.stdout = Stamp(sys.stdout)
target = sys.argv[1]
sys.argv = sys.argv[1:]
if target.endswith(".py"):
    sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def run(target: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Run ``target`` under the stamper: {"losses": {t: [content..., style..., total]}, "wall"/"cpu": {t: s}}."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-u", "-c", STAMPER, *target]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    losses: dict[int, list[float]] = {}
    wall: dict[int, float] = {}
    cpu: dict[int, float] = {}
    current = None
    assert proc.stdout is not None
    for raw in proc.stdout:
        parts = raw.rstrip("\n").split(" ", 2)
        if len(parts) < 3:
            continue
        line = parts[2]
        m = ITER.match(line)
        if m:
            current = int(m.group(1))
            wall[current], cpu[current] = float(parts[0]), float(parts[1])
            losses[current] = []
            continue
        m = LOSS.match(line)
        if m and current is not None:
            losses[current].append(float(m.group(3) or m.group(4)))
    err = proc.stderr.read() if proc.stderr else ""
    rc = proc.wait()
    if rc != 0:
        sys.stderr.write(err[-3000:])
    return {"losses": losses, "wall": wall, "cpu": cpu, "seconds": time.perf_counter() - t0, "rc": rc}


# The fast path's first 10 L-BFGS steps are exact fp32 (impasto.gatys.optimize.FAST_LBFGS_EXACT_STEPS): its seconds
# per iteration are timed after them when the run is long enough (--iters 13 or more).
FAST_UNTIMED = 11


def per_iteration(times: dict[int, float], skip: int = 0) -> float | None:
    if len(times) - skip >= 2:
        times = {t: v for t, v in times.items() if t > skip}
    if len(times) < 2:
        return None
    first, last = min(times), max(times)
    return (times[last] - times[first]) / (last - first)


def fast_worker(flags: list[str]) -> int:
    """Paint with the neural-style flags on impasto's fast path (``fast=True``), printing upstream's report lines.

    Run under the stamper like the other two, so its seconds per iteration are read the same way.
    """
    from impasto.cli.neural_style import add_parser, config_from_args
    from impasto.events import Progress
    from impasto.gatys.optimize import paint
    from impasto.imaging import load_image

    ap = argparse.ArgumentParser()
    add_parser(ap)
    args = ap.parse_args(flags)
    config = config_from_args(args).replace(fast=True)

    def report(event: object) -> None:
        if isinstance(event, Progress):
            print(f"Iteration {event.step} / {event.total}")
            print(f"  Total loss: {event.losses['total']}")

    paint(load_image(args.content_image), [load_image(args.style_image)], config, callback=report)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--fast-worker"]:
        return fast_worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--nspt", required=True, help="folder with neural_style.py, CaffeLoader.py and torchvision stand-in"
    )
    ap.add_argument("--work", default="/tmp/impasto-compare", help="scratch folder for weights, images and outputs")
    ap.add_argument("--arch", choices=sorted(FILE_NAMES), default="vgg19", help="random network to compare on")
    ap.add_argument("--size", type=int, default=64, help="-image_size")
    ap.add_argument("--iters", type=int, default=20, help="-num_iterations")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=0, help="torch threads for both (0: leave as is)")
    ap.add_argument("--extra", default="", help="more neural-style flags for both, e.g. '-optimizer adam'")
    ap.add_argument("--json", default=None, help="write the report here too")
    ap.add_argument("--no-fast", action="store_true", help="skip the third run, impasto's fast path (fast=True)")
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    weights = work / FILE_NAMES[args.arch]  # neural-style-pt picks the architecture from the file name
    if not weights.exists():
        random_weights(weights, args.arch)
    content, style = work / "content.png", work / "style.png"
    if not content.exists():
        test_image(content, (600, 450), 1)
        test_image(style, (500, 500), 2)
    outs = {"neural-style-pt": work / "nspt" / "out.png", "impasto": work / "impasto" / "out.png"}
    for p in outs.values():
        p.parent.mkdir(exist_ok=True)
    flags = [
        "-content_image", str(content), "-style_image", str(style), "-model_file", str(weights),
        "-gpu", "c", "-image_size", str(args.size), "-num_iterations", str(args.iters), "-seed", str(args.seed),
        "-print_iter", "1", "-save_iter", "0", *args.extra.split(),
    ]  # fmt: skip
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    repo = Path(__file__).resolve().parents[1]
    nspt_cmd = [str(Path(args.nspt) / "neural_style.py"), *flags, "-output_image", str(outs["neural-style-pt"])]
    impasto_cmd = ["impasto", "neural-style", *flags, "-output_image", str(outs["impasto"])]
    runs = {"neural-style-pt": run(nspt_cmd, Path(args.nspt), env), "impasto": run(impasto_cmd, repo, env)}
    if not args.no_fast:  # the fast path on the same flags (its own loss values: bf16 network)
        fast_flags = [f for f in flags if f not in ("-print_iter", "1")] + ["-print_iter", "0"]
        runs["impasto-fast"] = run([str(Path(__file__).resolve()), "--fast-worker", *fast_flags], repo, env)
    a, b = runs["neural-style-pt"], runs["impasto"]
    report: dict = {"settings": vars(args), "rc": {k: v["rc"] for k, v in runs.items()}}
    if a["rc"] == 0 and b["rc"] == 0:
        steps = sorted(set(a["losses"]) & set(b["losses"]))
        rel = []
        for t in steps:
            x, y = np.array(a["losses"][t]), np.array(b["losses"][t])
            rel.append(float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-30))))
        img_a = np.asarray(Image.open(outs["neural-style-pt"]).convert("RGB"), dtype=np.int16)
        img_b = np.asarray(Image.open(outs["impasto"]).convert("RGB"), dtype=np.int16)
        diff = np.abs(img_a - img_b)
        report.update(
            {
                "steps_compared": len(steps),
                "max_rel_loss_diff_first_step": rel[0] if rel else None,
                "max_rel_loss_diff_any_step": max(rel) if rel else None,
                "max_rel_loss_diff_per_step": rel,
                "total_loss_last": {
                    "neural-style-pt": a["losses"][steps[-1]][-1],
                    "impasto": b["losses"][steps[-1]][-1],
                },
                "image_shape": list(img_a.shape),
                "image_max_abs_diff_levels": int(diff.max()),
                "image_mean_abs_diff_levels": float(diff.mean()),
                "image_pixels_differing": float((diff > 0).mean()),
                "seconds_per_iteration_wall": {
                    k: per_iteration(v["wall"], FAST_UNTIMED if k == "impasto-fast" else 0) for k, v in runs.items()
                },
                "cpu_seconds_per_iteration": {
                    k: per_iteration(v["cpu"], FAST_UNTIMED if k == "impasto-fast" else 0) for k, v in runs.items()
                },
                "run_seconds": {k: v["seconds"] for k, v in runs.items()},
            }
        )
        # How many times faster per iteration than neural-style-pt (> 1: faster), wall and process CPU time.
        # With fewer than lbfgs_num_correction iterations the L-BFGS history is not full yet: run --iters 110 (or
        # more) to include the cost of the two-loop over 100 pairs, which impasto's fast path replaces.
        for key in ("seconds_per_iteration_wall", "cpu_seconds_per_iteration"):
            per = report[key]
            report[key.replace("seconds_per_iteration", "speedup_vs_nspt")] = {
                k: (per["neural-style-pt"] / v if v and per["neural-style-pt"] else None)
                for k, v in per.items()
                if k != "neural-style-pt"
            }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if all(v == 0 for v in report["rc"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
