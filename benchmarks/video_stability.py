"""Temporal stability and end-to-end video throughput of `impasto video`, per fast method, with and without
--stabilize. Writes JSON and prints a table.

Stability: the mean absolute frame-to-frame change of the output divided by the input's (0-255, same-size frames;
impasto.fast.video.stability_ratio), measured on the stylised frames before encoding, on a clip with camera motion
(default ../shared/data/video/mountain_2.mp4, 50 frames 1024x436). ``drift`` is the mean absolute difference
(0-255) between the stabilised and the per-frame frames: how far the stabiliser moves the picture.

Throughput: frames per second, wall clock, for the whole `impasto.api.video` call (probe, decode, stylise, write
work frames, encode with audio) on a 720p clip made from the same video (scaled to 1280x720 with a sine track,
into the temp folder).

    python benchmarks/video_stability.py --device cpu --out bench-results/video.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from impasto import api
from impasto.media import ffmpeg_exe, numbered_frames, read_frame

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
VIDEO = SHARED / "video" / "mountain_2.mp4"
STYLE = SHARED / "images" / "neural-style-pt" / "starry_night.jpg"


def methods(style: str, preset: str) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = [
        ("magenta arbitrary", {"method": "magenta", "styles": [style]}),
        (f"magenta preset {preset}", {"method": "magenta", "preset": preset}),
    ]
    for layer in ("r31", "r41"):
        if api.models.info(f"linear.{layer}").installed:
            out.append((f"linear {layer}", {"method": "linear", "layer": layer, "styles": [style]}))
    return out


def skipped_linear() -> list[str]:
    return [
        f"linear {layer}: weights not installed (random weights would give a meaningless stability figure)"
        for layer in ("r31", "r41")
        if not api.models.info(f"linear.{layer}").installed
    ]


def stability(video: Path, options: dict, size: int | None, device: str, work: Path) -> dict:
    """Ratio without and with --stabilize, and the stabiliser's drift from the per-frame result."""
    row: dict = {}
    frames: dict[bool, list[np.ndarray]] = {}
    for stab in (False, True):
        out = work / f"stab{int(stab)}.mp4"
        t0 = time.perf_counter()
        res = api.video(video, out, size=size, stabilize=stab, measure_stability=True, keep_frames=True,
                        overwrite=True, device=device, **options)  # fmt: skip
        row["stabilized" if stab else "plain"] = {
            "ratio": res.info["stability"], "seconds": time.perf_counter() - t0, "size": list(res.size),
        }  # fmt: skip
        folder = Path(f"{out}.frames")
        frames[stab] = [read_frame(p) for _, p in sorted(numbered_frames(folder).items())]
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
    row["drift"] = float(
        np.mean([np.abs(a.astype(np.float32) - b).mean() for a, b in zip(frames[False], frames[True], strict=True)])
    )
    return row


def make_720p(video: Path, folder: Path) -> Path:
    out = folder / "mountain_2_720p.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-i", str(video), "-f", "lavfi", "-i",
         "sine=frequency=440:duration=10", "-vf", "scale=1280:720", "-c:v", "libx264", "-crf", "16", "-pix_fmt",
         "yuv420p", "-c:a", "aac", "-shortest", str(out)],
        check=True,
    )  # fmt: skip
    return out


def throughput(clip: Path, options: dict, stab: bool, device: str, work: Path) -> dict:
    out = work / f"tp{int(stab)}.mp4"
    t0 = time.perf_counter()
    res = api.video(clip, out, stabilize=stab, overwrite=True, device=device, **options)
    wall = time.perf_counter() - t0
    return {"frames": res.frames, "seconds": wall, "fps": res.frames / wall, "size": list(res.size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", default=str(VIDEO))
    ap.add_argument("--style", default=str(STYLE))
    ap.add_argument("--preset", default="7")
    ap.add_argument("--size", type=int, help="longest side for the stability runs (default: the clip's own)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-throughput", action="store_true", help="skip the 720p end-to-end runs")
    ap.add_argument("--out", default="bench-results/video.json")
    args = ap.parse_args()

    report: dict = {
        "machine": {
            "platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "device": args.device,
        },
        "video": args.video, "style": args.style, "stability": {}, "throughput_720p": {}, "notes": skipped_linear(),
    }  # fmt: skip
    todo = methods(args.style, args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, options in todo:
            report["stability"][name] = stability(Path(args.video), options, args.size, args.device, work)
            print(name, report["stability"][name], flush=True)
        if not args.no_throughput:
            clip = make_720p(Path(args.video), work)
            for name, options in todo:
                report["throughput_720p"][name] = {
                    "plain": throughput(clip, options, False, args.device, work),
                    "stabilized": throughput(clip, options, True, args.device, work),
                }
                print(name, report["throughput_720p"][name], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))

    print()
    print("| method | stability ratio | with --stabilize | drift (0-255) | 720p fps | 720p fps, --stabilize |")
    print("|---|---|---|---|---|---|")
    for name, _ in todo:
        s = report["stability"][name]
        t = report["throughput_720p"].get(name, {})
        fps = [f"{t[k]['fps']:.2f}" if k in t else "-" for k in ("plain", "stabilized")]
        print(f"| {name} | {s['plain']['ratio']:.3f} | {s['stabilized']['ratio']:.3f} | {s['drift']:.2f} | "
              f"{fps[0]} | {fps[1]} |")  # fmt: skip
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
