"""impasto's linear style transfer against the reference code (LinearStyleTransfer), same checkpoint, same inputs.

    OMP_NUM_THREADS=2 python benchmarks/compare_linear_reference.py --reference /tmp/LinearStyleTransfer \
        [--size 256] [--repeat 3] [--json out.json]

For r31 and r41: random weights in the reference's file formats (``tests/linear_tiny.py``: He-initialised, the
decoders' last conv scaled so the pictures use the whole 0-255 range) are written to a temporary ``models/``
folder; the reference's own classes (``libs/models.py`` encoder3/encoder4, decoder3/decoder4 and ``libs/Matrix.py``
MulLayer, the one TestArtistic.py imports) load them with ``load_state_dict`` and run TestArtistic.py's loop body
(``sF = vgg(style); cF = vgg(content); feature, _ = matrix(cF[layer] or cF, sF[...]); transfer = dec(feature)``),
then save as it does: ``clamp(0, 1)`` and ``vutils.save_image(normalize=True, scale_each=True)`` (a per-image
min-max stretch, then ``* 255 + 0.5`` to uint8; torchvision is not installed here, so that function is written out
below and ``torchvision`` is stubbed in ``sys.modules`` in case a reference module imports it). impasto renders
the same PNG files through ``impasto.stylize(method="linear")``, which loads the files through its registry.

Images: content and style are 256x256 PNGs (smooth random patterns), read as the reference's loader does
(PIL -> RGB -> /255; its ``Resize(256)`` leaves a 256x256 image unchanged). Reported, on 0-255: the mean and max
absolute difference between the reference's saved image and impasto's (exact fp32 recipe), the same against the
reference's output before its min-max stretch, and impasto's fast recipe (bf16 where the CPU has it,
channels_last) against its exact one. Speed: seconds per image, median of ``--repeat`` runs, both in this process
with the same thread count (the reference computes the style's features for every image, as TestArtistic.py
does; impasto's figure is per image with the style prepared once, as a folder or video run uses it, and the
figure with the style included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import linear_tiny  # noqa: E402  (tests/linear_tiny.py: random weights in the reference's formats)

SPREAD = {"r31": 0.9, "r41": 1.8}  # decoder contrast so that both ends of 0-255 are reached


def _stub_torchvision() -> None:
    """The reference's libs import torchvision only for image utilities; give them an empty stand-in."""
    if "torchvision" in sys.modules:
        return
    tv = types.ModuleType("torchvision")
    for sub in ("utils", "transforms", "models"):
        mod = types.ModuleType(f"torchvision.{sub}")
        setattr(tv, sub, mod)
        sys.modules[f"torchvision.{sub}"] = mod
    sys.modules["torchvision"] = tv


def save_image_uint8(t: torch.Tensor, normalize: bool) -> np.ndarray:
    """torchvision.utils.save_image for one image: with ``normalize`` (and ``scale_each``) a min-max stretch to
    [0, 1], then ``mul(255).add_(0.5).clamp_(0, 255)`` to uint8, HWC."""
    x = t[0].detach().clone().float()
    if normalize:
        lo, hi = float(x.min()), float(x.max())
        x = x.clamp(lo, hi).sub(lo).div(max(hi - lo, 1e-5))
    return x.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()


def _pattern(path: Path, size: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    chans = []
    for _ in range(3):
        fx, fy, ph = rng.uniform(2, 12), rng.uniform(2, 12), rng.uniform(0, 6)
        chans.append(127 + 90 * np.sin(2 * np.pi * (fx * xx + fy * yy * yy) + ph) + rng.normal(0, 12, xx.shape))
    Image.fromarray(np.stack(chans, -1).clip(0, 255).astype(np.uint8)).save(path)
    return path


def _load_like_reference(path: Path) -> torch.Tensor:
    """libs/Loader.py in test mode: PIL RGB, Resize(fineSize) (a no-op at 256x256), ToTensor -> (1, 3, H, W)."""
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def _median_time(fn, repeat: int) -> float:  # noqa: ANN001
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_layer(ref_root: Path, layer: str, size: int, repeat: int, work: Path) -> dict:
    from libs.Matrix import MulLayer  # the module TestArtistic.py uses (not libs/MatrixTest.py)
    from libs.models import decoder3, decoder4, encoder3, encoder4

    from impasto import api
    from impasto.modelcache import ModelCache
    from impasto.zoo import store

    files = (f"vgg_{layer}.pth", f"dec_{layer}.pth", f"{layer}.pth")
    models_dir = work / "models"
    for f in files:
        models_dir.mkdir(parents=True, exist_ok=True)
        torch.save(linear_tiny.state(f, seed=3, spread=SPREAD[layer]), models_dir / f)
    content_path = _pattern(work / "content.png", size, 1)
    style_path = _pattern(work / "style.png", size, 2)

    # --- the reference: TestArtistic.py's model set-up and loop body --------------------------------------
    vgg, dec = (encoder3(), decoder3()) if layer == "r31" else (encoder4(), decoder4())
    matrix = MulLayer(layer)
    vgg.load_state_dict(torch.load(models_dir / files[0], weights_only=True))
    dec.load_state_dict(torch.load(models_dir / files[1], weights_only=True))
    matrix.load_state_dict(torch.load(models_dir / files[2], weights_only=True))
    for m in (vgg, dec, matrix):
        m.eval()
    contentV, styleV = _load_like_reference(content_path), _load_like_reference(style_path)

    def reference() -> torch.Tensor:
        with torch.no_grad():
            sF = vgg(styleV)
            cF = vgg(contentV)
            if layer == "r41":
                feature, _transmatrix = matrix(cF[layer], sF[layer])
            else:
                feature, _transmatrix = matrix(cF, sF)
            transfer = dec(feature)
        return transfer.clamp(0, 1)

    ref_out = reference()
    ref_saved = save_image_uint8(ref_out, normalize=True)  # as TestArtistic.py saves it
    ref_plain = save_image_uint8(ref_out, normalize=False)  # before the min-max stretch

    # --- impasto: the same files through its registry and the public API --------------------------------
    store.import_files(f"linear.{layer}", models_dir, force=True)
    cache = ModelCache()

    def ours(fast: bool) -> np.ndarray:
        from impasto.fast.linear import LinearStylizer
        from impasto.fast.magenta import StylizeOptions

        st = LinearStylizer(layer, device="cpu", fast=fast, models=cache)
        style = st.prepare_style([Image.open(style_path).convert("RGB")])
        return np.asarray(st.stylize(Image.open(content_path).convert("RGB"), style, StylizeOptions()))

    exact = ours(fast=False)
    fast = ours(fast=True)
    api_img = np.asarray(api.stylize(content_path, styles=[style_path], method="linear", layer=layer, device="cpu"))

    def diff(a: np.ndarray, b: np.ndarray) -> dict:
        d = np.abs(a.astype(np.int16) - b.astype(np.int16))
        return {"mean": round(float(d.mean()), 4), "max": int(d.max())}

    # --- speed ---------------------------------------------------------------------------------------------
    from impasto.fast.linear import LinearStylizer
    from impasto.fast.magenta import StylizeOptions

    ref_s = _median_time(reference, repeat)
    timings = {"reference_s_per_image": round(ref_s, 4)}
    content_t = _load_like_reference(content_path)
    for fast_flag in (False, True):
        st = LinearStylizer(layer, device="cpu", fast=fast_flag, models=cache)
        style_img = Image.open(style_path).convert("RGB")
        style = st.prepare_style([style_img])
        tag = "fast" if fast_flag else "exact"
        timings[f"impasto_{tag}_s_per_image"] = round(
            _median_time(lambda st=st, style=style: st.render(content_t, style, StylizeOptions()), repeat), 4
        )
        timings[f"impasto_{tag}_with_style_s_per_image"] = round(
            _median_time(
                lambda st=st, style_img=style_img: st.render(content_t, st.prepare_style([style_img])), repeat
            ),
            4,
        )
    return {
        "layer": layer,
        "size": size,
        "reference_output_range": [round(float(ref_out.min()), 4), round(float(ref_out.max()), 4)],
        "impasto_exact_vs_reference_saved": diff(exact, ref_saved),
        "impasto_exact_vs_reference_unstretched": diff(exact, ref_plain),
        "impasto_api_vs_reference_saved": diff(api_img, ref_saved),
        "impasto_fast_vs_exact": diff(fast, exact),
        **timings,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="a LinearStyleTransfer checkout (holds libs/models.py)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layers", default="r31,r41")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    ref_root = Path(args.reference).resolve()
    if not (ref_root / "libs" / "models.py").is_file():
        ap.error(f"{ref_root} has no libs/models.py; give a LinearStyleTransfer checkout")
    _stub_torchvision()
    sys.path.insert(0, str(ref_root))
    results = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "layers": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["IMPASTO_HOME"] = str(Path(tmp) / "home")  # never the user's cache
        for layer in args.layers.split(","):
            work = Path(tmp) / layer
            work.mkdir()
            results["layers"].append(run_layer(ref_root, layer, args.size, args.repeat, work))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
