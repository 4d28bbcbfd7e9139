"""The benchmark suite on the user's device: stylise, paint (exact vs fast), BigGAN and workers scaling.

:func:`run_bench` measures each section and returns one JSON-ready dict; ``impasto bench`` writes it and prints a
table, so two machines can be compared. Every section uses the weights that are installed and falls back to
random weights of the real architecture's size when they are not (random values run at the speed of trained ones);
each section's ``weights`` says which it used. Nothing here prints: progress goes to ``callback`` as events.

Sections (``quick`` shrinks every size and count so the whole suite takes about a minute on a laptop CPU):

* ``stylize`` -- Magenta (packaged weights, always installed) frames per second at 512 and 1024 px (quick:
  256), arbitrary style and preset; plus the linear method where ``linear.r41`` is installed.
* ``paint`` -- seconds per L-BFGS iteration, exact fp32 path vs the fast path, on VGG-19 (``vgg19.caffe`` if
  installed, else a random one) at 512 px (quick: 64).
* ``biggan`` -- samples per second of BigGAN-deep at 128 and 256 px (quick: 128), batch 1.
* ``workers`` -- images per second stylising a folder (16 photos at 512 px; quick: 4 at 128) with 1 and 2 local
  pool workers, measured after every worker has started and loaded its model (``startup_s`` apart).

Timings are medians of a few repeats after a warm-up; on a shared machine they vary (run it twice).
"""

from __future__ import annotations

import functools
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import __version__
from .errors import Cancelled, ConfigError
from .events import Callback, CancelToken, Progress, Started, emit

log = logging.getLogger(__name__)

SECTIONS = ("stylize", "paint", "biggan", "workers")


def parse_only(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"stylize,paint"`` -> the sections in suite order; None -> all. ConfigError names a bad one."""
    if text is None:
        return SECTIONS
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    bad = [n for n in names if n not in SECTIONS]
    if bad or not names:
        raise ConfigError(f"unknown bench section {', '.join(bad) or repr(text)}; choose from {', '.join(SECTIONS)}")
    return tuple(s for s in SECTIONS if s in names)


def photo(side: int, seed: int = 0) -> Image.Image:
    """A deterministic photo-like 4:3 RGB image with longest side ``side`` (smooth waves plus fine noise)."""
    h = max(8, side * 3 // 4)
    yy, xx = np.mgrid[0:h, 0:side].astype(np.float32)
    rng = np.random.default_rng(seed)
    phase = seed * 0.7
    img = np.stack([np.sin(xx / 37.0 + phase), np.cos(yy / 23.0), np.sin((xx + yy) / 51.0 - phase)], -1) * 0.35 + 0.5
    img += rng.normal(0, 0.05, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn: Callable[[], object], repeats: int, device: torch.device, cancel: CancelToken | None) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after one untimed warm-up."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if cancel is not None:
            cancel.check()
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- sections ----------------------------------------------------------------------------------------------------


def bench_stylize(device: torch.device, quick: bool, cancel: CancelToken | None = None) -> dict[str, Any]:
    """Magenta (and linear, if installed) frames per second: ``results`` rows of size, mode, seconds, fps."""
    from .fast.magenta import MagentaStylizer, StylizeOptions, parse_presets
    from .modelcache import ModelCache

    sizes = [256] if quick else [512, 1024]
    repeats = 2 if quick else 5
    models = ModelCache()
    st = MagentaStylizer(device=device, models=models)
    vec = st.style_vector(photo(300, seed=7))
    preset = parse_presets("7")
    opts = StylizeOptions()
    rows = []
    for side in sizes:
        img = photo(side)
        calls = {
            "arbitrary": lambda img=img: st.with_vector(img, vec, opts),
            "preset": lambda img=img: st.with_preset(img, preset, opts),
        }
        for mode, fn in calls.items():
            s = _median_time(fn, repeats, device, cancel)
            rows.append({"method": "magenta", "mode": mode, "size": side, "seconds": s, "fps": 1.0 / s})
    weights = ["magenta (packaged)"]
    from .zoo.store import is_installed

    if is_installed("linear.r41"):
        from .fast.linear import LinearStylizer
        from .imaging import pil_to_tensor

        lin = LinearStylizer(layer="r41", device=device, models=models)
        style = lin.prepare_style([photo(300, seed=7)])
        for side in sizes:
            x = pil_to_tensor(photo(side))
            s = _median_time(functools.partial(lin.render, x, style, opts), repeats, device, cancel)
            rows.append({"method": "linear", "mode": "arbitrary", "size": side, "seconds": s, "fps": 1.0 / s})
        weights.append("linear.r41 (installed)")
    models.release()
    return {"weights": ", ".join(weights), "results": rows}


def _random_vgg19(path: Path, seed: int = 0) -> Path:
    """VGG-19's convolutions with He-initialised random weights, in neural-style-pt's key layout."""
    cfg: list[int | str]
    cfg = [64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 512, 512, "P", 512, 512, 512, 512, "P"]
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    pos, cin = 0, 3
    for c in cfg:
        if c == "P":
            pos += 1
            continue
        cout = int(c)
        sd[f"features.{pos}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * (2.0 / (cin * 9)) ** 0.5
        sd[f"features.{pos}.bias"] = torch.randn(cout, generator=gen) * 0.01
        pos, cin = pos + 2, cout
    torch.save(sd, path)
    return path


def bench_paint(
    device: torch.device, quick: bool, cancel: CancelToken | None = None, work: Path | None = None
) -> dict[str, Any]:
    """Seconds per L-BFGS iteration, exact fp32 vs the fast path: ``results`` rows of path, size, s_per_iter."""
    from .gatys.config import PaintConfig
    from .gatys.optimize import paint
    from .zoo.store import is_installed

    size = 64 if quick else 512
    iterations, warmup = (4, 1) if quick else (20, 5)
    model: str | None
    model_file: str | None
    if is_installed("vgg19.caffe"):
        model, model_file, weights = "vgg19.caffe", None, "vgg19.caffe (installed)"
    else:
        folder = work or Path(tempfile.mkdtemp(prefix="impasto-bench-"))
        model, model_file = None, str(_random_vgg19(folder / "vgg19-random.pth"))
        weights = "VGG-19, random weights (vgg19.caffe not installed)"
    content, style = photo(size, seed=1), photo(size, seed=2)
    gpu = "c" if device.type == "cpu" else str(device.index or 0)
    rows: list[dict[str, Any]] = []
    for fast in (False, True):
        marks: list[float] = []

        def on_event(event: object, marks: list[float] = marks) -> None:
            if isinstance(event, Progress):
                _sync(device)
                marks.append(time.perf_counter())

        cfg = PaintConfig(
            model=model, model_file=model_file, image_size=size, num_iterations=iterations, optimizer="lbfgs",
            fast=fast, seed=1, print_iter=0, save_iter=0, gpu=gpu,
        )  # fmt: skip
        paint(content, [style], cfg, callback=on_event, cancel=cancel)
        timed = marks[warmup - 1 :]
        per = (timed[-1] - timed[0]) / max(1, len(timed) - 1)
        rows.append({"path": "fast" if fast else "exact", "size": size, "s_per_iter": per, "iterations": iterations})
    exact, fast_row = rows
    return {"weights": weights, "results": rows, "fast_speedup": exact["s_per_iter"] / fast_row["s_per_iter"]}


def bench_biggan(device: torch.device, quick: bool, cancel: CancelToken | None = None) -> dict[str, Any]:
    """BigGAN-deep samples per second at batch 1: ``results`` rows of resolution, seconds, samples_per_s."""
    from .gan.model import BigGAN, load_model, resolve_precision
    from .nets.biggan import BIGGAN_DEEP_128, BIGGAN_DEEP_256
    from .zoo.store import is_installed

    rows, used = [], []
    for res, config in ((128, BIGGAN_DEEP_128),) if quick else ((128, BIGGAN_DEEP_128), (256, BIGGAN_DEEP_256)):
        name = f"biggan-deep.{res}"
        if is_installed(name):
            net = load_model(name, device=device)
            used.append(f"{name} (installed)")
        else:
            with torch.device("cpu"):
                net = BigGAN(config, resolve_precision(device)).eval().requires_grad_(False)
            net = net.to(device)
            used.append(f"{name}: random weights (not installed)")
        gen = torch.Generator().manual_seed(0)
        z = (torch.randn(1, 128, generator=gen).clamp(-2, 2) * 0.4).to(device)
        y = torch.zeros(1, 1000, device=device)
        y[:, 207] = 1.0

        def forward(net: Any = net, z: torch.Tensor = z, y: torch.Tensor = y) -> object:
            with torch.inference_mode():
                return net(z, y, 0.4)

        s = _median_time(forward, 2 if quick else 4, device, cancel)
        rows.append({"resolution": res, "batch_size": 1, "seconds": s, "samples_per_s": 1.0 / s})
        del net
    return {"weights": "; ".join(used), "results": rows}


def stylize_folder_throughput(
    executor: Any, inputs: Sequence[Path], out_dir: Path, *, size: int, device: str = "auto",
    cancel: CancelToken | None = None,
) -> dict[str, float]:  # fmt: skip
    """Stylise ``inputs`` (preset 7, longest side ``size``) over ``executor`` twice: first ``executor.workers``
    images to start every worker and load its model (``startup_s``), then all of them (``seconds``,
    ``images_per_s``). Outputs go to ``out_dir`` (``i_<name>.png``)."""
    from .workers import Task

    def tasks(tag: str, items: Sequence[Path]) -> list[Task]:
        return [
            Task(
                key=f"{tag}{p.name}",
                fn="impasto.workers.tasks:stylize_image",
                kwargs={
                    "input": str(p),
                    "output": str(out_dir / f"{tag}{p.stem}.png"),
                    "preset": "7",
                    "options": {"size": size},
                    "device": device,
                },
            )  # fmt: skip
            for p in items
        ]

    t0 = time.perf_counter()
    for _ in executor.run(tasks("w_", list(inputs)[: max(1, executor.workers)]), cancel=cancel):
        pass
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(1 for _ in executor.run(tasks("i_", inputs), cancel=cancel))
    seconds = time.perf_counter() - t0
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds, "startup_s": startup}


def bench_workers(device: torch.device, quick: bool, cancel: CancelToken | None = None,
                  work: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Folder throughput with 1 and 2 local workers: ``results`` rows of workers, images_per_s, startup_s."""
    from .workers import cpu_cores
    from .workers.local import LocalPoolExecutor

    count, size = (4, 128) if quick else (16, 512)
    folder = Path(work or tempfile.mkdtemp(prefix="impasto-bench-")) / "workers"
    (folder / "in").mkdir(parents=True, exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    inputs = []
    for i in range(count):
        p = folder / "in" / f"photo_{i:03d}.png"
        photo(size, seed=i).save(p)
        inputs.append(p)
    rows: list[dict[str, Any]] = []
    for n in (1, 2):
        with LocalPoolExecutor(n, device=str(device)) as ex:  # the pool even for 1: the same overheads
            got = stylize_folder_throughput(ex, inputs, folder / "out", size=size, device=str(device), cancel=cancel)
        rows.append({"workers": n, "backend": "local", **got})
    return {
        "weights": "magenta (packaged)", "images": count, "size": size, "cpu_cores": cpu_cores(), "results": rows,
        "speedup_2_workers": rows[1]["images_per_s"] / rows[0]["images_per_s"],
    }  # fmt: skip


# --- the suite -----------------------------------------------------------------------------------------------------


def machine_info(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on."""
    from .workers import cpu_cores

    info: dict[str, Any] = {
        "impasto": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
        "cpu_cores": cpu_cores(), "torch_threads": torch.get_num_threads(), "device": str(device),
    }  # fmt: skip
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_bench(
    only: str | Sequence[str] | None = None,
    *,
    quick: bool = False,
    device: str = "auto",
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Run the chosen sections (``only``: names from :data:`SECTIONS` or a comma list; None: all) and return
    ``{"machine": {...}, "quick": bool, "sections": {name: {"weights": str, "results": [rows], ...,
    "elapsed_s": float}}}`` with every figure a positive number.

    Events: ``Started(total=len(sections))``, then a ``Progress`` after each section (``info["section"]``).
    ``cancel`` raises ``Cancelled(partial)``, ``partial`` the same dict holding the sections finished so far.
    """
    from .devices import resolve_device

    names = parse_only(only)
    dev = resolve_device(device)
    report: dict[str, Any] = {"machine": machine_info(dev), "quick": quick, "sections": {}}
    emit(callback, Started(total=len(names), info={"sections": list(names), "device": str(dev)}))
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="impasto-bench-") as tmp:
        for k, name in enumerate(names):
            if cancel is not None:
                cancel.check(partial=report)
            t0 = time.perf_counter()
            try:
                if name == "stylize":
                    section = bench_stylize(dev, quick, cancel)
                elif name == "paint":
                    section = bench_paint(dev, quick, cancel, Path(tmp))
                elif name == "biggan":
                    section = bench_biggan(dev, quick, cancel)
                else:
                    section = bench_workers(dev, quick, cancel, Path(tmp))
            except Cancelled as exc:
                exc.partial = report
                raise
            section["elapsed_s"] = time.perf_counter() - t0
            report["sections"][name] = section
            emit(callback, Progress(step=k + 1, total=len(names), elapsed=time.perf_counter() - t_all,
                                    info={"section": name}))  # fmt: skip
    return report


def table(report: dict[str, Any]) -> list[str]:
    """The report as lines of a plain-text table (what ``impasto bench`` prints)."""
    lines = []
    m = report.get("machine", {})
    where = m.get("gpu") or m.get("processor", "?")
    quick = " [quick]" if report.get("quick") else ""
    lines.append(
        f"impasto {m.get('impasto', '?')} on {where} ({m.get('device', '?')}, {m.get('cpu_cores', '?')} cores){quick}"
    )
    for name, sec in report.get("sections", {}).items():
        lines.append(f"{name}  ({sec.get('weights', '')})")
        for row in sec.get("results", []):
            if name == "stylize":
                lines.append(f"  {row['method']:8} {row['mode']:9} {row['size']:5d} px  {row['fps']:8.2f} frames/s")
            elif name == "paint":
                lines.append(f"  {row['path']:8} {row['size']:5d} px  {row['s_per_iter']:8.3f} s/iteration")
            elif name == "biggan":
                lines.append(
                    f"  {row['resolution']:5d} px batch {row['batch_size']}  {row['samples_per_s']:8.2f} samples/s"
                )
            else:
                lines.append(f"  {row['workers']} {row['backend']:5} worker(s)  {row['images_per_s']:8.2f} images/s "
                             f"(start-up {row['startup_s']:.1f} s)")  # fmt: skip
    return lines
