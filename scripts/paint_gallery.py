"""Make docs/paint-settings.jpg: one content/style pair painted with the offline default network
(mobilenetv2.magenta) under neural-style-pt's settings and under each of impasto's quality tools, beside
neural-style-pt's own VGG-19 result for the pair.

Panels (each a separate run, the same seed and budget):

1. ``neural-style-pt``: Gram style loss, one scale, no averaging, random start (the network's weights);
2. ``--style-loss w2``;  3. ``--average``;  4. ``--scales auto`` (sqrt(2) steps, one budget split over them);
5. impasto's recipe for this network (``--init stylized --style-loss w2``, the MobileNetV2's defaults);
6. neural-style-pt's VGG-19 reference output (read from --reference, not painted here).

Each panel is kept as a PNG in --work (default $TMPDIR/impasto-paint-gallery/), so one panel can be re-made alone
(``--only scales``) and the sheet re-assembled. Every label carries the run's seconds and the style (W2) distance
and content SSIM from ``impasto.api.score`` (MobileNetV2 style layers), so the sheet and the numbers agree.

Usage (about 2 x 5 runs of --iterations at --size on a CPU; 384 px x 300 steps is a few minutes each here)::

    python scripts/paint_gallery.py --size 384 --iterations 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from impasto import api
from impasto.media import make_grid, write_bytes

NS = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
DEFAULT_CONTENT = NS / "neural-style-pt" / "tubingen.jpg"
DEFAULT_STYLE = NS / "neural-style-pt" / "starry_night.jpg"
DEFAULT_REFERENCE = NS / "reference-outputs" / "tubingen_starry.png"

# name -> (label, PaintConfig options on top of the shared ones).
# Every panel names its settings in full, so the sheet does not change when a default does. The MobileNetV2's
# Gram weight (1e5) for neural-style-pt's recipe; the W2 loss is about 10x larger at the same match, so 1e4.
NEURAL_STYLE = {"style_loss": "gram", "style_weight": 1e5, "average": False, "scales": None, "init": "random"}
STROKES = {"style_loss": "w2", "style_weight": 1e4, "average": False, "scales": None, "init": "stylized"}
PANELS: dict[str, tuple[str, dict[str, object]]] = {
    "neural-style": ("neural-style-pt's settings (gram, 1 scale)", NEURAL_STYLE),
    "w2": ("--style-loss w2 --style-weight 1e4", {**NEURAL_STYLE, "style_loss": "w2", "style_weight": 1e4}),
    "average": ("--average", {**NEURAL_STYLE, "average": True}),
    "scales": ("--scales auto", {**NEURAL_STYLE, "scales": "auto"}),
    "default": ("impasto's MobileNetV2 default: --init stylized --style-loss w2", STROKES),
}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def _labelled(img: Image.Image, lines: list[str]) -> Image.Image:
    """``img`` with a white caption strip of ``lines`` under it."""
    font = _font(max(11, img.width // 30))
    line_h = int(font.size * 1.3) if hasattr(font, "size") else 14
    out = Image.new("RGB", (img.width, img.height + line_h * len(lines) + 6), "white")
    out.paste(img, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(lines):
        draw.text((4, img.height + 3 + i * line_h), text, fill="black", font=font)
    return out


def _scores(img: Image.Image, content: Path, style: Path) -> dict[str, float]:
    s = api.score(img, content=content, style=style, network="mobilenetv2.magenta", device="cpu")
    return {"ssim": s["content"]["ssim"], "w2": s["style"]["w2"], "gram": s["style"]["gram"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", type=Path, default=DEFAULT_CONTENT)
    p.add_argument("--style", type=Path, default=DEFAULT_STYLE)
    p.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="neural-style-pt's VGG-19 output")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="", help="comma-separated panels to (re)paint; the others are read from --work")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "impasto-paint-gallery")
    p.add_argument("--out", type=Path, default=Path("docs/paint-settings.jpg"))
    p.add_argument("--quality", type=int, default=82)
    args = p.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(PANELS)
    if unknown:
        p.error(f"unknown panel(s) {', '.join(sorted(unknown))}; known: {', '.join(PANELS)}")
    shared = {"model": "mobilenetv2.magenta", "image_size": args.size, "num_iterations": args.iterations,
              "seed": args.seed, "gpu": "c", "print_iter": 0, "save_iter": 0}  # fmt: skip
    for name in PANELS:
        png, meta = args.work / f"{name}.png", args.work / f"{name}.json"
        if (name not in only) if only else (png.exists() and meta.exists()):
            continue  # --only: just those panels; without it: the missing ones
        options = {k: v for k, v in PANELS[name][1].items()}
        t = time.perf_counter()
        result = api.paint(args.content, args.style, **shared, **options)
        seconds = time.perf_counter() - t
        picture = result.pictures()[0]
        picture.save(png)
        info = {"seconds": seconds, "steps": result.steps, **_scores(picture, args.content, args.style),
                "config": {k: v for k, v in options.items()}}  # fmt: skip
        meta.write_text(json.dumps(info, indent=1, default=str))
        print(f"{name}: {json.dumps(info, default=str)}")

    missing = [n for n in PANELS if not (args.work / f"{n}.png").exists()]
    if missing:
        print(f"not making the sheet yet: panel(s) {', '.join(missing)} still to paint")
        return
    tiles = []
    for name, (label, _) in PANELS.items():
        img = Image.open(args.work / f"{name}.png").convert("RGB")
        info = json.loads((args.work / f"{name}.json").read_text())
        tiles.append(_labelled(img, [label, f"{info['seconds']:.0f} s  W2 {info['w2']:.2f}  SSIM {info['ssim']:.2f}"]))
    size = tiles[0].size
    ref = Image.open(args.reference).convert("RGB")
    ref = ref.resize((size[0], round(ref.height * size[0] / ref.width)), Image.LANCZOS)
    ref_scores = _scores(ref, args.content, args.style)
    ref_tile = _labelled(ref, ["neural-style-pt, VGG-19 (reference)", f"W2 {ref_scores['w2']:.2f}  SSIM "
                                                                     f"{ref_scores['ssim']:.2f}"])  # fmt: skip
    tiles.append(ref_tile.resize(size) if ref_tile.size != size else ref_tile)
    sheet = make_grid(tiles, ncol=3, padding=4)
    import io

    buf = io.BytesIO()
    sheet.save(buf, "JPEG", quality=args.quality, optimize=True, progressive=True)
    write_bytes(args.out, buf.getvalue())
    print(f"{args.out}: {sheet.size[0]}x{sheet.size[1]}, {len(buf.getvalue()) // 1024} KB")


if __name__ == "__main__":
    main()
