"""BigGAN-deep throughput: impasto vs pytorch-pretrained-BigGAN (the reference), same weights, same machine.

    .venv/bin/python benchmarks/biggan.py --device cpu --resolutions 128 256 --batch-sizes 1 4 \
        --reference /tmp/refbiggan/bin/python --out bench-results/biggan.json

Each resolution uses the published config (channel width 128, 51 BN statistic sets) with random weights in the
reference's checkpoint format (random values run at the same speed as the real ones). Every measurement runs in a
fresh subprocess (so peak memory is per configuration), impasto and the reference alternating, and reports
samples/s from the best (and the median) of ``--rounds`` x ``--repeats`` timed forwards, each worker after
``--warmup`` untimed ones; the best is the robust figure on a machine shared with other work. The reference runs in
eval mode under ``torch.no_grad`` (its fastest setting); it is found as an importable package or via
``--reference PYTHON`` (an interpreter that has it; see scripts/verify_biggan_reference.py). With ``--precision``
listing bf16, the JSON also reports how far bf16 outputs are from fp32 ("bf16_quality").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(spec: dict) -> dict:
    """One measurement in this process: ``spec`` names the implementation, folder, batch size, device."""
    import torch

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = torch.device(spec["device"])
    folder, bs, res = spec["folder"], spec["batch_size"], spec["resolution"]
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(bs, 128, generator=g).clamp(-2, 2) * 0.4).to(device)
    y = torch.zeros(bs, 1000)
    y[:, 207] = 1.0
    y = y.to(device)
    rss_before = _peak_rss_mb()
    if spec["impl"] == "reference":
        from pytorch_pretrained_biggan import BigGAN

        model = BigGAN.from_pretrained(folder).to(device).eval()
        ctx = torch.no_grad
    else:
        sys.path.insert(0, str(ROOT / "src"))
        from impasto.gan.model import BigGAN as Ours

        model = Ours.from_pretrained(folder, device=device, precision=spec["precision"])
        ctx = torch.inference_mode
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    with ctx():
        for i in range(spec["warmup"] + spec["repeats"]):
            sync()
            t0 = time.perf_counter()
            out = model(z, y, 0.4)
            sync()
            if i >= spec["warmup"]:
                times.append(time.perf_counter() - t0)
    assert out.shape == (bs, 3, res, res)
    med = statistics.median(times)
    result = {
        "impl": spec["impl"],
        "precision": spec.get("precision", "fp32"),
        "resolution": res,
        "batch_size": bs,
        "seconds_per_batch": med,
        "samples_per_s": bs / med,
        "times": times,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_model_mb": rss_before,
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    if spec.get("save_output"):
        torch.save(out.float().cpu(), spec["save_output"])
    return result


def run_worker(python: str, spec: dict) -> dict:
    env = dict(os.environ)
    proc = subprocess.run(
        [python, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['impl']} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reference_python(arg: str | None) -> str | None:
    if arg:
        return arg
    import importlib.util

    if importlib.util.find_spec("pytorch_pretrained_biggan") is not None:
        return sys.executable
    return None


def make_folder(res: int, root: Path) -> Path:
    sys.path.insert(0, str(ROOT / "src"))
    from impasto.nets.biggan import PUBLISHED_CONFIGS
    from impasto.zoo.biggan_format import random_reference_state_dict, write_reference_dir

    cfg = PUBLISHED_CONFIGS[res]
    return write_reference_dir(root / f"biggan-deep-{res}", cfg, random_reference_state_dict(cfg, seed=res))


def bf16_quality_at_image_contrast(folder: Path, target_std: float = 0.5) -> dict:
    """bf16 vs fp32 on the same random model after scaling the last BN's gain so the fp32 output has the
    contrast of real images (std ~0.5 in [-1, 1]; random weights alone give a washed-out ~0.15)."""
    import math

    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from impasto.gan.model import BigGAN

    a = BigGAN.from_pretrained(folder, precision="fp32")
    b = BigGAN.from_pretrained(folder, precision="bf16")
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 128, generator=g).clamp(-2, 2)
    y = torch.zeros(2, 1000)
    y[:, 207] = 1.0
    out: dict = {}
    with torch.inference_mode():
        for _ in range(3):  # calibrate the gain (tanh saturates, so iterate)
            gain = target_std / float(a(z, y, 1.0).std())
            for m in (a, b):
                m.generator.bn.weight.mul_(gain)
        for t in (0.4, 1.0):
            x, w = a(z * t, y, t), b(z * t, y, t)
            mse = float(((x - w) / 2).pow(2).mean())
            out[f"truncation_{t}"] = {
                "output_std": float(x.std()),
                "max_abs_diff": float((x - w).abs().max()),
                "mean_abs_diff": float((x - w).abs().mean()),
                "psnr_db": 10 * math.log10(1.0 / max(mse, 1e-12)),
            }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 256], choices=[128, 256, 512])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], help="impasto precisions to time")
    ap.add_argument("--repeats", type=int, default=3, help="timed forwards per worker")
    ap.add_argument("--rounds", type=int, default=2, help="workers per implementation, alternating")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in each worker (0: torch's default)")
    ap.add_argument(
        "--reference", help="python interpreter with pytorch-pretrained-biggan (default: this one if it has it)"
    )
    ap.add_argument("--out", type=Path, help="write the JSON here too")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    ref_py = reference_python(args.reference)
    report: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "device": args.device,
        "reference": ref_py or "not available",
        "runs": [],
        "speedup_vs_reference": {},
        "bf16_quality": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for res in args.resolutions:
            folder = make_folder(res, Path(tmp))
            if "bf16" in args.precision:
                report["bf16_quality"][f"{res}px_image_contrast"] = bf16_quality_at_image_contrast(folder)
            for bs in args.batch_sizes:
                base = {"folder": str(folder), "resolution": res, "batch_size": bs, "device": args.device,
                        "repeats": args.repeats, "warmup": args.warmup, "threads": args.threads}  # fmt: skip
                jobs = [("impasto", p, sys.executable) for p in args.precision]
                if ref_py:
                    jobs.append(("reference", "fp32", ref_py))
                merged: dict[tuple[str, str], dict] = {}
                outputs: dict[str, str] = {}
                # alternate the implementations round by round so that load from other processes hits both alike
                for rnd in range(args.rounds):
                    for impl, prec, python in jobs:
                        key = "reference" if impl == "reference" else prec
                        outputs[key] = str(Path(tmp) / f"out-{res}-{bs}-{key}.pt")
                        spec = base | {"impl": impl, "precision": prec, "save_output": outputs[key]}
                        r = run_worker(python, spec)
                        print(json.dumps({"round": rnd} | r), file=sys.stderr)
                        m = merged.setdefault((impl, prec), r | {"times": []})
                        m["times"] += r["times"]
                        m["peak_rss_mb"] = max(m["peak_rss_mb"], r["peak_rss_mb"])
                for m in merged.values():
                    m["best_seconds_per_batch"] = min(m["times"])
                    m["seconds_per_batch"] = statistics.median(m["times"])
                    m["samples_per_s"] = bs / m["best_seconds_per_batch"]
                    m["samples_per_s_median"] = bs / m["seconds_per_batch"]
                    report["runs"].append(m)
                ref = merged.get(("reference", "fp32"))
                if ref:
                    for (impl, prec), m in merged.items():
                        if impl == "impasto":
                            report["speedup_vs_reference"][f"{res}px_bs{bs}_{prec}"] = {
                                "best": m["samples_per_s"] / ref["samples_per_s"],
                                "median": m["samples_per_s_median"] / ref["samples_per_s_median"],
                            }
                import torch

                if "fp32" in outputs:
                    a = torch.load(outputs["fp32"], weights_only=True)
                    if "reference" in outputs:
                        b = torch.load(outputs["reference"], weights_only=True)
                        report.setdefault("max_abs_diff_fp32_vs_reference", {})[f"{res}px_bs{bs}"] = float(
                            (a - b).abs().max()
                        )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
