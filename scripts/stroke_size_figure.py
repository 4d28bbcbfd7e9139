"""docs/stroke-size.jpg: crops of a 4000-px stylisation at native stroke size, the default working size, a coarser one.

Usage: python scripts/stroke_size_figure.py PHOTO STYLE OUT.jpg   (the photo is upscaled to 4000 px wide first)
"""

import sys
import time

from PIL import Image, ImageDraw

from impasto import api


def main(photo_path: str, style_path: str, out: str) -> None:
    photo = Image.open(photo_path).convert("RGB")
    big = photo.resize((4000, round(4000 * photo.height / photo.width)), Image.Resampling.LANCZOS)
    style = Image.open(style_path).convert("RGB")
    settings: list[tuple[int | str, str]] = [
        ("native", "--working-size native"),
        (1024, "default: --working-size 1024"),
        (512, "--working-size 512"),
    ]
    crop_box = (1500, 1100, 2300, 1700)  # an 800x600 crop at full size
    tiles = []
    for ws, label in settings:
        t = time.time()
        img = api.stylize(big, styles=[style], working_size=ws)
        print(label, img.size, round(time.time() - t, 1), "s", flush=True)
        tiles.append((label, img.crop(crop_box)))
    w, h = 800, 600
    sheet = Image.new("RGB", (3 * w + 4 * 8, h + 8 * 2 + 24), "white")
    d = ImageDraw.Draw(sheet)
    for i, (label, crop) in enumerate(tiles):
        x = 8 + i * (w + 8)
        sheet.paste(crop, (x, 32))
        d.text((x + 2, 8), f"{label}  (800x600 crop of a 4000x3000 result)", fill=(0, 0, 0))
    sheet.save(out, quality=80, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
