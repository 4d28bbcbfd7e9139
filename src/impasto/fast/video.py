"""Video for every fast method: the frame loop, the temporal-stability metric and an optical-flow stabiliser.

The loop takes frames ((H, W, 3) uint8 RGB arrays) from any source and a *renderer* -- a callable taking a
(N, 3, H, W) float tensor in [0, 1] and returning the stylised frames the same way -- built once per run by the
caller (``impasto.api.video``) with every style-side quantity already computed (Magenta's style vector, a preset's
weights, the linear method's style matrices). It hands each finished frame to ``on_frame`` and never writes a
file itself.

Stabiliser (``stabilize=True``): each frame's result is blended with the previous *result* warped to the current
frame by dense optical flow computed on the *input* frames (backward flow t -> t-1, OpenCV DIS), weighted per
pixel by how well the warped previous input matches the current one::

    w(x)   = alpha * exp(-|I_t(x) - warp(I_{t-1})(x)| / sigma)       (mean over RGB, 0-255 scale)
    O_t(x) = (1 - w(x)) * S_t(x) + w(x) * warp(O_{t-1})(x)

where S_t is the renderer's output. Where the content moved consistently (the flow explains the change) the
result follows the previous result along the motion, an exponential moving average over the trajectory with
memory about 1 / (1 - alpha) frames; where it did not (occlusion, new content, a cut, flow failure) the weight
falls to 0 and the frame's own result is used, so no ghost is dragged over new content. Pixels whose flow points
outside the frame get weight 0. This is the blending step of Chen et al., "Coherent Online Video Style Transfer"
(ICCV 2017) with their learned mask replaced by the photometric consistency test above; it needs no training and
works for any renderer. Defaults: ``alpha = 0.7`` (the flicker in static regions drops to about
sqrt((1 - a) / (1 + a)) = 0.42 of its size for independent per-frame noise), ``sigma = 8`` (a mismatch of 8
levels leaves alpha / e of the weight, 20 levels less than a tenth of it).

Stability metric (:func:`stability_ratio`, :class:`StabilityMeter`): the mean absolute frame-to-frame change of
the output divided by that of the input, both in 0-255 on frames of the same size. 1 means the output changes
as much as the input; per-frame stylisation typically flickers well above 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..events import Callback, CancelToken, Finished, Preview, Progress, Started, Stopwatch, emit

log = logging.getLogger(__name__)

DEFAULT_ALPHA = 0.7  # how much of the warped previous result to keep where the content is consistent
DEFAULT_SIGMA = 8.0  # 0-255 levels; the consistency weight falls by e for every sigma of mismatch
OPENCV_HINT = "--stabilize needs OpenCV: pip install 'impasto[video]'"


# A per-frame stylisation: (N, 3, H, W) float in [0, 1] -> (N, 3, H, W) float in [0, 1] (same H, W), every
# style-side quantity computed before it was made.
Renderer = Callable[[torch.Tensor], torch.Tensor]


# --- conversions ------------------------------------------------------------------------------------------------


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]."""
    arr = frames[None] if frames.ndim == 3 else frames
    return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8 (clamped, rounded)."""
    return (x.detach().float().clamp(0, 1).mul(255.0).add_(0.5).to(torch.uint8)).permute(0, 2, 3, 1).cpu().numpy()


# --- the temporal-stability metric ------------------------------------------------------------------------------


class StabilityMeter:
    """Streaming :func:`stability_ratio`: ``add(input, output)`` per frame in order, then ``ratio``.

    Frames are (H, W, 3) uint8 (or float in 0-255); the input is resized to the output's size when they differ.
    """

    def __init__(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self.input_change = 0.0  # summed per-pair mean |I_t - I_{t-1}| (0-255)
        self.output_change = 0.0
        self.pairs = 0

    def add(self, inp: np.ndarray, out: np.ndarray) -> None:
        if inp.shape[:2] != out.shape[:2]:
            from PIL import Image

            inp = np.asarray(
                Image.fromarray(np.asarray(inp, np.uint8)).resize(out.shape[1::-1], Image.Resampling.BILINEAR)
            )
        cur = (np.asarray(inp, np.float32), np.asarray(out, np.float32))
        if self._prev is not None:
            self.input_change += float(np.abs(cur[0] - self._prev[0]).mean())
            self.output_change += float(np.abs(cur[1] - self._prev[1]).mean())
            self.pairs += 1
        self._prev = cur

    @property
    def ratio(self) -> float:
        """Mean output change / mean input change (nan with fewer than two frames or a still input)."""
        if self.pairs == 0 or self.input_change == 0:
            return float("nan")
        return self.output_change / self.input_change


def stability_ratio(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of ``outputs`` divided by that of ``inputs`` (0-255, same-size frames;
    inputs are resized to the outputs' size). Both are sequences of (H, W, 3) frames in the same order."""
    meter = StabilityMeter()
    for inp, out in zip(inputs, outputs, strict=True):
        meter.add(inp, out)
    return meter.ratio


# --- the stabiliser ---------------------------------------------------------------------------------------------


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise ConfigError(OPENCV_HINT) from None
    return cv2


def opencv_available() -> bool:
    """True when OpenCV (the ``impasto[video]`` extra) can be imported."""
    try:
        _cv2()
    except ConfigError:
        return False
    return True


@dataclass(frozen=True)
class StabilizeOptions:
    """``alpha`` in [0, 1): the most of the warped previous result kept; ``sigma`` > 0 in 0-255 levels."""

    alpha: float = DEFAULT_ALPHA
    sigma: float = DEFAULT_SIGMA

    def validate(self) -> None:
        if not 0.0 <= self.alpha < 1.0:
            raise ConfigError(f"stabilize alpha must be in [0, 1), got {self.alpha}")
        if not self.sigma > 0:
            raise ConfigError(f"stabilize sigma must be above 0, got {self.sigma}")


def backward_flow(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Dense flow from frame t to frame t-1: (H, W, 2) float32 such that current(x) ~ previous(x + flow(x)).

    Both (H, W, 3) uint8 RGB. OpenCV's DIS flow (medium preset) on the grey images.
    """
    cv2 = _cv2()
    a = cv2.cvtColor(np.ascontiguousarray(current), cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(np.ascontiguousarray(previous), cv2.COLOR_RGB2GRAY)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(a, b, None)


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W, C) float32 sampled at x + flow(x) (bilinear); returns it and an (H, W) bool mask of the
    pixels whose source lies inside the frame."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    out = cv2.remap(image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return out, inside


def stabilize_frame(
    current_input: np.ndarray,
    previous_input: np.ndarray,
    result: np.ndarray,
    previous_result: np.ndarray,
    opts: StabilizeOptions = StabilizeOptions(),  # noqa: B008 - frozen, never mutated
) -> np.ndarray:
    """One step of the stabiliser (see the module docstring). All four are (H, W, 3) uint8 of one size: the input
    frames t and t-1, the renderer's result for t and the stabilised result for t-1. Returns the stabilised
    result for t, (H, W, 3) uint8."""
    flow = backward_flow(current_input, previous_input)  # (H, W, 2)
    warped_in, inside = warp(previous_input.astype(np.float32), flow)
    warped_out, _ = warp(previous_result.astype(np.float32), flow)
    mismatch = np.abs(current_input.astype(np.float32) - warped_in).mean(axis=2)  # (H, W), 0-255
    weight = opts.alpha * np.exp(-mismatch / opts.sigma) * inside  # (H, W) in [0, alpha)
    blended = (1.0 - weight[..., None]) * result.astype(np.float32) + weight[..., None] * warped_out
    return (blended + 0.5).clip(0, 255).astype(np.uint8)


# --- the frame loop ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameLoopResult:
    """What :func:`stylize_frames` did: ``count`` frames handed to ``on_frame`` (``rendered`` of them made now,
    ``reused`` taken from ``done``), ``total`` asked for (0 if unknown), ``elapsed`` seconds, ``info``."""

    count: int
    rendered: int
    reused: int
    total: int
    elapsed: float
    info: Mapping[str, Any] = field(default_factory=dict)


def stylize_frames(
    frames: Iterable[np.ndarray],
    render: Renderer,
    *,
    on_frame: Callable[[int, np.ndarray], None],
    total: int = 0,
    stabilize: StabilizeOptions | None = None,
    done: Container[int] = (),
    load_done: Callable[[int], np.ndarray] | None = None,
    preview_every: int = 10,
    info: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> FrameLoopResult:
    """Stylise ``frames`` ((H, W, 3) uint8, all one size) one at a time with ``render`` and hand each result,
    (H, W, 3) uint8, to ``on_frame(index, frame)`` in order.

    ``done``: indices already finished (a resumed run): they are not rendered; ``load_done(i)`` returns such a
    frame's stored result, needed only when stabilising (the next frame blends with it) and for the last one before
    a frame to render. ``stabilize``: the flow stabiliser's options (None: off); frame t's blend uses frame t-1's
    stabilised result. Events: Started(total, info), a Progress per frame (``info``: ``fps`` so far, ``reused``),
    a Preview (RGB PIL) every ``preview_every`` rendered frames when there is a callback, Finished. ``cancel`` is
    checked before each frame and raises ``Cancelled(partial)``, ``partial`` a FrameLoopResult of the frames
    handed over.
    """
    if stabilize is not None:
        stabilize.validate()
        _cv2()  # fail before the first frame, not after it
    watch = Stopwatch()
    run_info = dict(info or {})
    count = rendered = reused = 0

    def so_far() -> FrameLoopResult:
        return FrameLoopResult(count, rendered, reused, total, watch(), run_info)

    emit(callback, Started(total=total, info=run_info))
    prev: tuple[int, np.ndarray, np.ndarray] | None = None  # (index, input, stabilised result) of the last frame
    render_watch: Stopwatch | None = None
    for i, frame in enumerate(frames):
        if cancel is not None:
            cancel.check(partial=so_far())  # between frames: everything handed over is complete
        if i in done:
            reused += 1
            count += 1
            # only the stabiliser looks back, and only from a frame it renders now
            if stabilize is not None and (i + 1) not in done and load_done is not None:
                prev = (i, frame, load_done(i))
            emit(callback, Progress(step=count, total=total, elapsed=watch(), info={"fps": 0.0, "reused": reused}))
            continue
        if render_watch is None:
            render_watch = Stopwatch()
        with torch.inference_mode():
            out = tensor_to_frames(render(frames_to_tensor(frame)))[0]  # (H, W, 3) uint8
        if out.shape != frame.shape:
            raise ConfigError(f"the renderer returned a {out.shape} frame for a {frame.shape} one")
        if stabilize is not None and prev is not None and prev[0] == i - 1:
            out = stabilize_frame(frame, prev[1], out, prev[2], stabilize)
        on_frame(i, out)
        prev = (i, frame, out) if stabilize is not None else None
        rendered += 1
        count += 1
        if callback is not None and (rendered - 1) % max(1, preview_every) == 0:
            from ..media import tensor_to_pil

            emit(callback, Preview(step=count, image=tensor_to_pil(frames_to_tensor(out)), info={"index": i}))
        fps = rendered / max(render_watch(), 1e-9)
        emit(callback, Progress(step=count, total=total, elapsed=watch(), info={"fps": fps, "reused": reused}))
    result = so_far()
    emit(callback, Finished(result=result, elapsed=result.elapsed))
    return result


@dataclass(frozen=True)
class VideoResult:
    """What a video run made (``impasto.api.video``; also ``Cancelled.partial`` after Ctrl-C).

    ``output``: the video file or frame folder; ``frames``: frames in it; ``total``: frames in the input;
    ``complete``: False for a partial video (cancelled: the first ``frames`` frames, audio cut to match);
    ``fps``: the frame rate (a Fraction, the source's); ``size``: (W, H) of the stylised frames; ``elapsed`` in
    seconds; ``info``: ``method``, ``model``, ``device``, ``stabilize``, ``rendered``/``reused`` frames, ``audio``,
    ``stability`` (the output/input change ratio, measured on the frames made in this call), ``notes``.
    """

    output: Any
    frames: int
    total: int
    fps: Any
    size: tuple[int, int]
    elapsed: float
    complete: bool = True
    info: Mapping[str, Any] = field(default_factory=dict)

    def pictures(self, count: int = 4) -> list[Any]:
        """Up to ``count`` frames of the output, evenly spaced from first to last, as RGB PIL images."""
        from PIL import Image

        from ..media import probe_video, read_video

        if self.frames <= 0 or count <= 0:
            return []
        video = probe_video(self.output, fps=self.fps)
        n = video.frames
        wanted = {round(k * (n - 1) / max(1, count - 1)) for k in range(min(count, n))}
        out = []
        for i, frame in enumerate(read_video(video)):
            if i in wanted:
                out.append(Image.fromarray(frame))
            if len(out) == len(wanted):
                break
        return out
