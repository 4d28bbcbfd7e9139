"""The stable facade. The CLI and the web studio call only these functions.

Each area appends its functions below in its own section; implementations live in the area's package.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Union

from PIL import Image

from .errors import Cancelled, ConfigError
from .events import Callback, CancelToken, Finished, Preview, Progress, Started, Stopwatch, emit
from .imaging import load_image
from .modelcache import ModelCache

if TYPE_CHECKING:
    from .gatys.config import PaintConfig
    from .gatys.optimize import PaintResult
    from .study.records import StudyResult

ImageInput = Union[str, "os.PathLike[str]", Image.Image]

# The loaded networks of this process when a caller passes no ``models=``: a one-shot command uses it and exits; a
# long-lived process makes its own ModelCache and releases it (``release_models()`` empties this one).
default_models = ModelCache()
log = logging.getLogger(__name__)


def release_models() -> None:
    """Free every network the default cache holds (GPU memory included)."""
    default_models.release()


def _as_image(item: ImageInput, *, max_side: int | None = None) -> Image.Image:
    """An 8-bit sRGB RGB PIL image, upright, alpha on white, from a path or a PIL image.

    Files and PIL images go through the same :func:`impasto.imaging.normalise` (EXIF orientation, 16-bit, CMYK,
    palette, ICC profile). ``max_side``: for a path, the longest side the caller will use; a larger file is
    loaded at that size (huge JPEGs decoded at a reduced scale).
    """
    if isinstance(item, Image.Image):
        from .imaging import normalise

        return normalise(item)
    return load_image(item, max_side=max_side)


# --- fast style transfer (impasto.fast) -------------------------------------------------------------------

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from .fast.linear import LinearStylizer
    from .fast.magenta import MagentaStylizer, Stylized


def stylize_method(method: str | None = None, *, layer: str = "r41", preset: bool = False) -> str:
    """The fast method a stylize call uses: ``method`` when given (``"magenta"`` or ``"linear"``), else
    ``$IMPASTO_STYLIZE_METHOD`` when set, else ``"linear"`` once ``linear.<layer>`` is installed, else ``"magenta"``
    (the offline default). ``preset``: presets are Magenta's, so the default is then always magenta."""
    from .fast.linear import METHOD_ENV, METHODS, default_method

    if method is None:
        return default_method(os.environ.get(METHOD_ENV), layer=layer, preset=preset)
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    return method


def _stylize_setup(
    *, styles: Sequence[ImageInput], style_weights: Sequence[float] | None, preset: str | None, size: int | None,
    strength: float, preserve_color: bool, device: str, models: ModelCache | None, method: str | None = None,
    layer: str = "r41", working_size: int | str | None = None, cancel: CancelToken | None = None,
) -> tuple[MagentaStylizer | LinearStylizer, str, Callable[[], Callable[[Image.Image], Image.Image]]]:  # fmt: skip
    """Check every option and read the style images (no network is loaded yet).

    Returns the stylizer, the names of the networks it will use, and ``renderer()``, which loads them (once per
    ModelCache) and returns ``render(PIL) -> PIL``. ``working_size``: see :func:`stylize` (None: native, what
    the video path uses).
    """
    from .fast.magenta import StylizeOptions
    from .fast.render import style_side

    opts = StylizeOptions(
        size=size, strength=strength, preserve_color=preserve_color, working_size=parse_working_size(working_size)
    )
    opts.validate()  # before the method is decided, as the one-line errors have always come
    side = style_side(
        method=stylize_method(method, layer=layer, preset=preset is not None), layer=layer, styles=styles,
        style_weights=style_weights, preset=preset, opts=opts, device=device,
        models=default_models if models is None else models, read=_as_image, cancel=cancel,
    )  # fmt: skip
    return side.stylizer, side.model, side.image


DEFAULT_WORKING_SIZE = 1024  # impasto.fast.tiling.DEFAULT_WORKING_SIZE (kept equal by tests/test_stroke_size.py)


def parse_working_size(value: int | str | None) -> int | None:
    """A working size as given (``1024``, ``"1024"``, ``"native"``, None = native) -> px, or None for native.

    ConfigError in one line for anything else (the range is checked by ``StylizeOptions.validate``)."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text == "native":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"working size must be a number of px or 'native', got {value!r}") from None


def _input_label(item: ImageInput, index: int) -> str:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"<image {index}>"


def _stylize_stream(
    items: Iterable[ImageInput], total: int, setup: tuple, callback: Callback | None, cancel: CancelToken | None,
    keep: bool,
) -> Iterator[Stylized]:  # fmt: skip
    """Render ``items`` one at a time: read one, render it, hand it over, forget it (unless ``keep``)."""
    from .fast.magenta import Stylized, StylizeResult

    stylizer, model, renderer = setup
    watch = Stopwatch()
    info = {"model": model, "device": str(stylizer.device)}
    kept: list[Image.Image] = []
    count = 0

    def so_far() -> StylizeResult:
        return StylizeResult(images=tuple(kept), count=count, total=total, elapsed=watch(), info=info)

    emit(callback, Started(total=total, info=info))
    if cancel is not None:
        cancel.check(partial=so_far())
    render = renderer()
    for i, item in enumerate(items):
        if cancel is not None:
            cancel.check(partial=so_far())  # between images: everything handed over so far is complete
        try:
            out = render(_as_image(item))
        except Cancelled:  # inside a large image (between its tiles): the images handed over so far are complete
            raise Cancelled("cancelled", partial=so_far()) from None
        count += 1
        if keep:
            kept.append(out)
        emit(callback, Preview(step=i + 1, image=out, info={"index": i, "input": _input_label(item, i)}))
        yield Stylized(item, out)
        del out  # the caller has it now: this run holds no finished image while it makes the next
        emit(callback, Progress(step=i + 1, total=total, elapsed=watch()))  # the caller is done with image i
    emit(callback, Finished(result=so_far(), elapsed=watch()))


def stylize_each(
    contents: ImageInput | Iterable[ImageInput],
    *,
    styles: Sequence[ImageInput] = (),
    style_weights: Sequence[float] | None = None,
    preset: str | None = None,
    size: int | None = None,
    strength: float = 1.0,
    preserve_color: bool = False,
    device: str = "auto",
    models: ModelCache | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    method: str | None = None,
    layer: str = "r41",
    working_size: int | str | None = DEFAULT_WORKING_SIZE,
) -> Iterator[Stylized]:
    """Stylise ``contents`` one image at a time: an iterator of ``Stylized(input, image)`` in input order.

    The streaming form of :func:`stylize` (same options): each content image is read only when its turn comes,
    and no finished image is kept once it has been handed over, so a folder of any length needs the memory of
    one image. ``method`` and ``layer`` as for :func:`stylize`. ``input`` is the item as given (a path or a PIL
    image); ``image`` an RGB PIL image. The options are checked (and, for linear, the weights looked for) and the
    style images read when this is called; the networks load (once per ``models`` cache,
    default ``default_models``) at the first ``next()``. Events: Started (``info``: model, device), per image a
    Preview (``info``: ``index``, ``input``) before it is handed over and a Progress once the caller asks for the
    next, then Finished (a StylizeResult with ``count``, no images). ``cancel`` is checked between images and
    raises ``Cancelled(partial)``, ``partial.count`` being the images already handed over.
    """
    from collections.abc import Sized

    setup = _stylize_setup(
        styles=styles, style_weights=style_weights, preset=preset, size=size, strength=strength,
        preserve_color=preserve_color, device=device, models=models, method=method, layer=layer,
        working_size=working_size, cancel=cancel,
    )  # fmt: skip
    items = [contents] if isinstance(contents, (str, os.PathLike, Image.Image)) else contents
    total = len(items) if isinstance(items, Sized) else 0
    return _stylize_stream(items, total, setup, callback, cancel, keep=False)


def stylize(
    content: ImageInput | Sequence[ImageInput],
    *,
    styles: Sequence[ImageInput] = (),
    style_weights: Sequence[float] | None = None,
    preset: str | None = None,
    size: int | None = None,
    strength: float = 1.0,
    preserve_color: bool = False,
    device: str = "auto",
    models: ModelCache | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    method: str | None = None,
    layer: str = "r41",
    working_size: int | str | None = DEFAULT_WORKING_SIZE,
) -> Image.Image | list[Image.Image]:
    """Fast stylisation: ``styles`` (arbitrary style images) or ``preset`` (Magenta's built-in styles).

    ``method``: ``"magenta"`` (Magenta's arbitrary network, offline) or ``"linear"`` (Li et al.'s learned linear
    transform at ``layer`` ``"r41"`` or ``"r31"``; needs ``linear.<layer>`` installed); None chooses as
    :func:`stylize_method` says. With linear, several styles blend by the weighted mean of their style matrices
    and means, and ``strength`` mixes the transformed features with the photo's own before decoding.

    ``content``: a path or PIL image, or a sequence of them (then a list is returned, holding every result in
    memory: for a folder use :func:`stylize_each`). ``style_weights`` blends several style images (normalised to
    sum 1). ``preset``: ``"7"`` or ``"3:0.5,12:0.5"`` (26 built-in styles). ``size``: longest output side in px
    (None keeps each input's size). ``working_size``: the stroke-size control -- the longest side in px the
    network paints at (default 1024); a larger output is painted at that size and upsampled guided by the
    full-size photo (fast guided filter), so strokes keep their look at any output size (smaller: bigger strokes);
    ``"native"`` (or None) paints at the output size itself (the network's own, pin-sized strokes on a large
    photo), tile by tile with whole-image instance-norm statistics, in bounded memory, at any size.
    ``strength`` in [0, 1]. ``models``: where the loaded networks are kept
    (default ``default_models``). Emits Started, a Preview and a Progress per image and Finished (a StylizeResult
    with every image) to ``callback``; checks ``cancel`` between images (``Cancelled.partial``: a StylizeResult
    with the images made so far).
    """
    setup = _stylize_setup(
        styles=styles, style_weights=style_weights, preset=preset, size=size, strength=strength,
        preserve_color=preserve_color, device=device, models=models, method=method, layer=layer,
        working_size=working_size, cancel=cancel,
    )  # fmt: skip
    items: list[ImageInput]
    if isinstance(content, (str, os.PathLike, Image.Image)):
        items, single = [content], True
    else:
        items, single = list(content), False
    results = [done.image for done in _stylize_stream(items, len(items), setup, callback, cancel, keep=True)]
    return results[0] if single else results


def preset_sheet(
    content: ImageInput,
    *,
    tile: int = 256,
    device: str = "auto",
    models: ModelCache | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> Image.Image:
    """A contact sheet: the photo and the 26 built-in styles on it, each labelled with its preset number.

    ``tile``: longest side of each tile in px (at least 32). ``models``: where the loaded network is kept (default
    ``default_models``). Emits Started (total 26), a Progress per preset tile and Finished (the sheet); ``cancel``
    is checked before each tile (``Cancelled`` with no partial sheet). Returns an RGB PIL image.
    """
    from .fast.magenta import MODEL_NAMES, NUM_PRESETS, MagentaStylizer, contact_sheet

    if tile < 32:
        raise ConfigError(f"tile must be at least 32 px, got {tile}")
    photo = _as_image(content)
    stylizer = MagentaStylizer(device=device, models=default_models if models is None else models)
    watch = Stopwatch()
    info = {"model": MODEL_NAMES["multistyle"], "device": str(stylizer.device)}
    emit(callback, Started(total=NUM_PRESETS, info=info))

    def on_tile(n: int) -> None:
        emit(callback, Progress(step=n, total=NUM_PRESETS, elapsed=watch()))

    sheet = contact_sheet(stylizer, photo, tile=tile, on_tile=on_tile, cancel=cancel)
    emit(callback, Finished(result=sheet, elapsed=watch()))
    return sheet


# --- video (impasto.fast.video) ----------------------------------------------------------------------------
#
# Orchestration of a video run. It writes files, as the output IS a file: the stylised frames go, as they are made,
# into a work folder beside the output (``OUT.frames/``, PNGs written atomically, plus a manifest of the settings);
# the video is encoded from them at the end (or, after Ctrl-C, from those made so far) and the work folder removed.
# A killed run leaves the work folder, and ``resume=True`` with the same settings renders only the missing frames.
# The frame loop itself (impasto.fast.video) writes nothing: it takes callbacks and returns frames.

if TYPE_CHECKING:
    import numpy as np

    from .fast.video import Renderer, StabilizeOptions, VideoResult
    from .media import VideoInfo
    from .workers import Executor

VIDEO_MANIFEST = ".impasto-video.json"  # in the work folder (or the output folder, for frames out)


def _video_renderer(
    *, method: str, layer: str, styles: Sequence[ImageInput], style_weights: Sequence[float] | None,
    preset: str | None, strength: float, preserve_color: bool, device: str, models: ModelCache | None,
) -> tuple[Callable[[], Renderer], dict[str, str]]:  # fmt: skip
    """Check the method's options and read the style images; returns ``make()`` -- which loads the networks and
    computes the style side (Magenta's style vector, the linear method's matrices) ONCE, returning the per-frame
    renderer -- and ``info`` (model, device)."""
    from .fast.magenta import StylizeOptions
    from .fast.render import style_side

    side = style_side(
        method=method, layer=layer, styles=styles, style_weights=style_weights, preset=preset,
        opts=StylizeOptions(strength=strength, preserve_color=preserve_color), device=device,
        models=default_models if models is None else models, read=_as_image,
    )  # fmt: skip
    return side.frames, {"model": side.model, "device": side.device}


def _video_fingerprint(
    source: VideoInfo, *, method: str, layer: str, styles: Sequence[ImageInput], style_weights: object,
    preset: str | None, size: tuple[int, int], strength: float, preserve_color: bool, stabilize: object,
) -> dict[str, object]:  # fmt: skip
    """What decides the stylised frames (the device aside): a resumed run must match it exactly."""
    import hashlib

    def pixels(item: ImageInput) -> str:
        img = _as_image(item)
        return hashlib.sha256(repr(img.size).encode() + img.tobytes()).hexdigest()[:20]

    what: list[object]
    if source.is_folder:
        what = [(f.name, f.stat().st_size) for f in source.files]
    else:
        with open(source.path, "rb") as fh:
            head = hashlib.sha256(fh.read(1 << 20)).hexdigest()[:20]
        what = [source.path.name, source.path.stat().st_size, head]
    return {
        "input": hashlib.sha256(repr(what).encode()).hexdigest()[:20],
        "frames": source.frames,
        "fps": str(source.fps),
        "method": method,
        "layer": layer if method == "linear" else None,
        "styles": [pixels(s) for s in styles],
        "style_weights": None if style_weights is None else [float(w) for w in style_weights],  # type: ignore[attr-defined]
        "preset": preset,
        "size": list(size),
        "strength": strength,
        "preserve_color": preserve_color,
        "stabilize": stabilize,
    }


def _video_chunked(
    executor: Executor, source: VideoInfo, out: os.PathLike[str], work: os.PathLike[str], *, to_folder: bool,
    fingerprint: dict[str, object], resume: bool, chunk_frames: int | None, styles: Sequence[ImageInput],
    frame_size: tuple[int, int], stab: StabilizeOptions | None, device: str, keep_frames: bool, notes: list[str],
    info: dict[str, object], callback: Callback | None, cancel: CancelToken | None, watch: Stopwatch,
) -> VideoResult:  # fmt: skip
    """:func:`video` over ``executor``: the chunk plan, a task per missing chunk, the stitch (see
    :mod:`impasto.workers.video`). Every check was made by the caller; ``resume``: a saved plan is reused."""
    import json
    import shutil
    from pathlib import Path

    from .errors import ImageError
    from .fast import video as fv
    from .media import (
        FRAME_PATTERN,
        FRAME_RE,
        encode_video,
        ensure_folder,
        numbered_frames,
        save_image,
        stray_parts,
        write_frame,
        write_text,
    )
    from .workers import Task
    from .workers import video as wv

    out, work = Path(out), Path(work)
    manifest = work / wv.CHUNK_MANIFEST
    make_work = not work.exists()
    ensure_folder(work, what="chunk folder")
    for part in stray_parts(work):  # what a killed worker was writing
        part.unlink(missing_ok=True)
    saved = json.loads(manifest.read_text(encoding="utf-8")) if resume else None
    if saved is not None and "plan" in saved:
        plan = wv.ChunkPlan.from_json(saved["plan"])
    else:
        per = chunk_frames or wv.default_chunk_frames(source.frames, executor.workers)
        warm = wv.warmup_frames(None if stab is None else stab.alpha)
        plan = wv.ChunkPlan(tuple(wv.plan_chunks(source.frames, per)), warm)
        for old in work.glob("chunk_*.zip"):  # not resuming: an earlier run's chunks are not ours
            old.unlink(missing_ok=True)
    style_paths = []
    for i, s in enumerate(styles):  # by path, so a worker (on any node sharing the folder) reads them
        dest = work / f"style_{i}.png"
        if not (resume and dest.is_file()):
            save_image(_as_image(s), dest)
        style_paths.append(str(dest.resolve()))
    write_text(manifest, json.dumps({"fingerprint": fingerprint, "impasto": "video-chunks", "plan": plan.to_json()}))
    style = {
        "method": info["method"], "layer": fingerprint["layer"] or "r41", "styles": style_paths,
        "style_weights": fingerprint["style_weights"], "preset": fingerprint["preset"],
        "strength": fingerprint["strength"], "preserve_color": fingerprint["preserve_color"],
    }  # fmt: skip
    done = wv.finished_chunks(work, plan.chunks)
    tasks = [
        Task(
            key=wv.chunk_name(a, b),
            fn=wv.TASK_FN,
            kwargs={
                "input": str(source.path.resolve()),
                "work": str(work.resolve()),
                "start": a,
                "stop": b,
                "size": list(frame_size),
                "style": style,
                "warmup": plan.warmup,
                "device": device,
                "stabilize": None if stab is None else [stab.alpha, stab.sigma],
            },
        )  # fmt: skip
        for a, b in plan.chunks
        if (a, b) not in done
    ]
    run_info = {
        **info, "size": list(frame_size), "chunks": len(plan.chunks), "chunk_frames": plan.chunks[0][1] if plan.chunks
        else 0, "warmup": plan.warmup, "executor": executor.description, "workers": executor.workers,
    }  # fmt: skip
    reused_ranges = set(done)
    reused = len(done)
    emit(callback, Started(total=source.frames, info=run_info))

    def frames_done() -> int:
        return sum(done.values())

    def result(count: int, complete: bool) -> VideoResult:
        details = dict(run_info)
        details.update(
            rendered=sum(n for r, n in done.items() if r not in reused_ranges),
            reused=sum(n for r, n in done.items() if r in reused_ranges),
            chunks_rendered=len(done) - reused, chunks_reused=reused,
            audio=source.audio if (source.audio and not to_folder and out.suffix.lower() != ".gif") else None,
            stability=None, notes=list(notes), frames_folder=str(work),
        )  # fmt: skip
        return fv.VideoResult(out, count, source.frames, source.fps, frame_size, watch(), complete, details)

    def stitch(count: int) -> None:
        # a chunk a worker finished after the cancel is on disk but not counted: take the counted prefix only
        frames = itertools.islice(wv.stitch_frames(work, plan.chunks), count)
        if not to_folder:
            encode_video(frames, out, fps=source.fps, size=frame_size, audio_from=source, expect_frames=count)
            return
        ensure_folder(out)
        for i, frame in enumerate(frames):
            write_frame(out / FRAME_PATTERN.format(i + 1), frame)
        for i, p in numbered_frames(out).items():
            if i >= count:
                p.unlink(missing_ok=True)  # a longer earlier run's frames
        for part in stray_parts(out):
            if FRAME_RE.match(part.name[1:].rsplit(".", 2)[0]):
                part.unlink(missing_ok=True)

    emit(callback, Progress(step=frames_done(), total=source.frames, elapsed=watch(), info={"reused": reused}))
    try:
        for got in executor.run(tasks, cancel=cancel):
            value = got.value
            done[(int(value["start"]), int(value["stop"]))] = int(value["frames"])
            emit(callback, Progress(
                step=frames_done(), total=source.frames, elapsed=watch(),
                info={"chunks": len(done), "of": len(plan.chunks), "worker": got.worker, "attempts": got.attempts},
            ))  # fmt: skip
    except Cancelled as exc:
        count = wv.prefix_frames(done, plan.chunks)
        if count:
            stitch(count)
        elif make_work:
            shutil.rmtree(work, ignore_errors=True)
        exc.partial = result(count, False)
        raise
    count = wv.prefix_frames(done, plan.chunks)
    if len(done) != len(plan.chunks):
        raise ImageError(f"{len(plan.chunks) - len(done)} chunks of {out} were not made")  # an executor bug
    if count != source.frames:
        notes.append(f"decoded {count} frames where the container said {source.frames}")
    stitch(count)
    if not keep_frames:
        shutil.rmtree(work, ignore_errors=True)
    final = result(count, True)
    emit(callback, Finished(result=final, elapsed=final.elapsed))
    return final


def video(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    styles: Sequence[ImageInput] = (),
    style_weights: Sequence[float] | None = None,
    preset: str | None = None,
    method: str | None = "magenta",
    layer: str = "r41",
    size: int | None = None,
    strength: float = 1.0,
    preserve_color: bool = False,
    stabilize: bool = False,
    stabilize_alpha: float | None = None,
    fps: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    keep_frames: bool = False,
    measure_stability: bool = False,
    device: str = "auto",
    models: ModelCache | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    executor: Executor | None = None,
    chunk_frames: int | None = None,
) -> VideoResult:
    """Stylise a video (mp4, mov, webm, gif, ...) or a folder of frames into a video or a folder of frames.

    ``output``: a ``.mp4``/``.mov``/``.webm``/``.gif`` file, or a folder (frames ``frame_000001.png`` ...). The
    frame rate (as a rational), the frame count and the audio track (not in a GIF) are kept; odd sizes are padded
    to even for H.264/VP9 (``info["notes"]`` says so). ``method``: ``magenta`` (``styles`` or ``preset``) or
    ``linear`` (``styles``, ``layer`` r41/r31; needs its weights); None: the configured default (the
    IMPASTO_STYLIZE_METHOD environment variable, else linear when installed, else magenta). ``size``: longest side
    of the stylised frames (None: the input's). ``stabilize``: blend each result with the previous one warped by
    optical flow where the content is consistent (needs OpenCV: ``impasto[video]``; ``stabilize_alpha`` defaults
    to :data:`impasto.fast.video.DEFAULT_ALPHA`). ``fps``: the frame rate of a folder input (default 25).

    Files: see the section comment -- frames are kept in ``OUT.frames/`` while the run goes; ``resume`` reuses
    them (ConfigError when they were made with other settings); ``overwrite`` replaces an existing output (and an
    old run's frames); ``keep_frames`` keeps the work folder after the encode. ``measure_stability``: put the
    temporal-stability ratio of the frames rendered in this call in ``info["stability"]`` (a few ms a frame).
    Events: Started (``info``: model, device), a Progress per frame (``info["fps"]``), a Preview every 10 rendered
    frames, Finished (the VideoResult). ``cancel`` stops between frames: the frames made so far are encoded into a
    playable partial video at ``output`` (audio cut to its length) and ``Cancelled(partial)`` is raised,
    ``partial`` a VideoResult with ``complete=False`` (``frames`` 0 and no file when no frame was finished).

    ``executor`` (from :func:`open_executor`): the frames are split into chunks of ``chunk_frames`` (default:
    about four per worker) and each chunk is a task (:mod:`impasto.workers.video`): the chunk files go to
    ``OUT.chunks/`` beside the output (on a Ray cluster a folder every node shares), are stitched in order with
    the frame rate and audio kept, and ``resume`` skips the finished chunks (the saved chunk plan is kept,
    whatever the number of workers). ``models`` is then unused: each worker keeps its own. Progress counts the
    frames of finished chunks; ``cancel`` stops the job and encodes the finished chunks at the start.
    """
    import json
    import shutil
    from pathlib import Path

    from .fast import video as fv
    from .imaging import fit_size
    from .media import (
        FRAME_PATTERN,
        FRAME_RE,
        VIDEO_EXTENSIONS,
        check_video_output,
        check_writable,
        encode_video,
        ensure_folder,
        even_size,
        numbered_frames,
        probe_video,
        read_frame,
        read_video,
        stray_parts,
        write_frame,
        write_text,
    )
    from .workers.video import CHUNK_MANIFEST

    watch = Stopwatch()
    if method is None:
        from .fast.linear import METHOD_ENV, default_method

        method = default_method(os.environ.get(METHOD_ENV), layer, preset=preset is not None)
    if resume and overwrite:
        raise ConfigError("--resume keeps the frames made so far and --overwrite starts afresh; give one of the two")
    if size is not None and size < 16:
        raise ConfigError(f"size must be at least 16 px, got {size}")
    if fps is not None and not fps > 0:
        raise ConfigError(f"fps must be above 0, got {fps}")
    alpha = fv.DEFAULT_ALPHA if stabilize_alpha is None else stabilize_alpha
    stab = fv.StabilizeOptions(alpha=alpha) if stabilize else None
    if stab is not None:
        stab.validate()
        if not fv.opencv_available():
            raise ConfigError(fv.OPENCV_HINT)
    make_renderer, model_info = _video_renderer(
        method=method, layer=layer, styles=styles, style_weights=style_weights, preset=preset, strength=strength,
        preserve_color=preserve_color, device=device, models=models,
    )  # fmt: skip

    # -- where things go, all checked before any work --------------------------------------------------------
    source = probe_video(input, fps=fps)
    out = Path(output)
    to_folder = out.is_dir() or not out.suffix
    if not to_folder and out.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ConfigError(
            f"unsupported output extension {out.suffix.lower()!r} in {out.name!r}; use {', '.join(VIDEO_EXTENSIONS)} "
            "or a folder for frames"
        )
    if out.exists() and source.path.exists() and out.resolve() == source.path.resolve():
        raise ConfigError(f"the output {out} is the input; give another name")
    chunked = executor is not None
    if not chunked and resume and (Path(f"{out}.chunks") / CHUNK_MANIFEST).is_file():
        raise ConfigError(f"{out}.chunks holds the chunks of a run over workers; resume it with --workers N or --ray")
    if chunk_frames is not None and chunk_frames < 1:
        raise ConfigError(f"chunk frames must be at least 1, got {chunk_frames}")
    work = Path(f"{out}.chunks") if chunked else out if to_folder else Path(f"{out}.frames")
    manifest = work / (CHUNK_MANIFEST if chunked else VIDEO_MANIFEST)
    frame_size = fit_size(source.size, size)
    fingerprint = _video_fingerprint(
        source, method=method, layer=layer, styles=styles, style_weights=style_weights, preset=preset,
        size=frame_size, strength=strength, preserve_color=preserve_color,
        stabilize=None if stab is None else [stab.alpha, stab.sigma],
    )  # fmt: skip
    earlier = manifest.is_file()
    if earlier and resume:
        try:
            saved = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
            old = saved.get("fingerprint", {}) if isinstance(saved, dict) else {}
            diff = next((k for k in fingerprint if old.get(k) != fingerprint[k]), "the manifest is unreadable")
            raise ConfigError(
                f"cannot resume: the frames in {work} were made with other settings ({diff}); run with the same "
                "settings, or pass --overwrite to start afresh"
            )
    elif earlier and not overwrite:
        raise ConfigError(f"{work} holds the frames of an interrupted run; pass --resume to finish it or --overwrite")
    if to_folder:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"output folder {out} is a file, not a folder")
        theirs = [p for p in (out.iterdir() if out.is_dir() else ()) if p.name != VIDEO_MANIFEST]
        if chunked and work.exists() and not work.is_dir():
            raise ConfigError(f"{work} is a file; move it away (impasto keeps the chunks of a run there)")
        if theirs and not overwrite and not (resume and earlier):
            raise ConfigError(f"output folder {out} is not empty; pass --overwrite to write frames into it")
        if not out.parent.exists():
            raise ConfigError(f"output folder {out.parent} does not exist")
        check_writable(out.parent if not out.exists() else out)
    else:
        check_video_output(out, overwrite=overwrite or (resume and earlier) or (resume and out.exists()))
        if work.exists() and not work.is_dir():
            raise ConfigError(f"{work} is a file; move it away (impasto keeps the frames of a run there)")
        if resume and out.exists() and not earlier:
            info = {**model_info, "method": method, "notes": [f"{out} is already complete; nothing to do"]}
            return fv.VideoResult(out, source.frames, source.frames, source.fps, frame_size, watch(), True, info)

    notes: list[str] = []
    enc_size = frame_size
    if not to_folder and out.suffix.lower() != ".gif" and even_size(frame_size) != frame_size:
        enc_size = even_size(frame_size)
        notes.append(
            f"frames are {frame_size[0]}x{frame_size[1]}; padded to {enc_size[0]}x{enc_size[1]} (the video codec "
            "needs even sides)"
        )
    if source.audio and (to_folder or out.suffix.lower() == ".gif"):
        notes.append(f"the audio track ({source.audio}) is not kept: {'frames' if to_folder else 'a GIF'} has none")

    if chunked:
        assert executor is not None  # chunked means an executor was given
        return _video_chunked(
            executor, source, out, work, to_folder=to_folder, fingerprint=fingerprint, resume=resume and earlier,
            chunk_frames=chunk_frames, styles=styles, frame_size=frame_size, stab=stab, device=device,
            keep_frames=keep_frames, notes=notes, info={**model_info, "method": method, "stabilize": stab is not None},
            callback=callback, cancel=cancel, watch=watch,
        )  # fmt: skip

    # -- the work ------------------------------------------------------------------------------------------
    make_work = not work.exists()
    ensure_folder(work, what="frame folder")
    have = numbered_frames(work)
    for part in stray_parts(work):  # what a killed run was writing: ".frame_000007.png.XXXXXXXX.part"
        if FRAME_RE.match(part.name[1:].rsplit(".", 2)[0]) or part.name.startswith(f"{VIDEO_MANIFEST}."):
            part.unlink(missing_ok=True)
    if overwrite and not to_folder:
        for p in have.values():  # an old run's frames (ours by name) are replaced
            p.unlink(missing_ok=True)
        have = {}
    done = {i for i in have if i < source.frames} if resume else set()
    write_text(manifest, json.dumps({"fingerprint": fingerprint, "impasto": "video"}, indent=1))
    level = 6 if to_folder else 1  # the work folder's PNGs are temporary: fast compression
    meter = fv.StabilityMeter()

    latest: list = [None]  # the input frame in hand, for the stability meter

    def frames_in():  # noqa: ANN202
        for frame in read_video(source, size=frame_size):
            latest[0] = frame
            yield frame

    def on_frame(i: int, frame: np.ndarray) -> None:
        write_frame(work / FRAME_PATTERN.format(i + 1), frame, compress_level=level)
        if measure_stability:
            meter.add(latest[0], frame)

    run_info = {**model_info, "method": method, "stabilize": stab is not None, "size": list(frame_size)}

    def forward(event: object) -> None:  # the loop's Finished is not the run's: the encode comes after it
        if callback is not None and not isinstance(event, Finished):
            callback(event)  # type: ignore[arg-type]

    def result(count: int, complete: bool, loop: object | None) -> VideoResult:
        info = dict(run_info)
        info.update(
            rendered=getattr(loop, "rendered", 0), reused=getattr(loop, "reused", len(done)),
            audio=source.audio if (source.audio and not to_folder and out.suffix.lower() != ".gif") else None,
            stability=meter.ratio if meter.pairs else None, notes=list(notes), frames_folder=str(work),
        )  # fmt: skip
        return fv.VideoResult(out, count, source.frames, source.fps, frame_size, watch(), complete, info)

    def load(i: int):  # noqa: ANN202
        return read_frame(work / FRAME_PATTERN.format(i + 1))

    def encode(count: int) -> None:
        def stored():  # noqa: ANN202
            for i in range(count):
                yield read_frame(work / FRAME_PATTERN.format(i + 1))

        encode_video(stored(), out, fps=source.fps, size=frame_size, audio_from=source, expect_frames=count)

    try:
        loop = fv.stylize_frames(
            frames_in(), make_renderer(), on_frame=on_frame, total=source.frames, stabilize=stab, done=done,
            load_done=load, info=run_info, callback=forward, cancel=cancel,
        )  # fmt: skip
    except Cancelled as exc:
        made = numbered_frames(work)
        count = 0
        while count in made:
            count += 1
        if count and not to_folder:
            encode(count)
        elif not count and make_work and not to_folder:
            shutil.rmtree(work, ignore_errors=True)
        exc.partial = result(count, False, exc.partial)
        raise
    count = loop.count
    if count != source.frames:
        notes.append(f"decoded {count} frames where the container said {source.frames}")
    if to_folder:
        for i, p in numbered_frames(work).items():
            if i >= count:
                p.unlink(missing_ok=True)  # a longer earlier run's frames (only with overwrite or resume)
        manifest.unlink(missing_ok=True)
    else:
        encode(count)
        if not keep_frames:
            shutil.rmtree(work, ignore_errors=True)
    final = result(count, True, loop)
    emit(callback, Finished(result=final, elapsed=final.elapsed))
    return final


# --- benchmarks (impasto.bench) ----------------------------------------------------------------------------


def bench_sections(only: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """The benchmark sections ``only`` names (a comma list or names; None: all, in suite order): stylize, paint,
    biggan, workers. ConfigError names an unknown one (checked before any work)."""
    from .bench import parse_only

    return parse_only(only)


def bench(
    only: str | Sequence[str] | None = None,
    *,
    quick: bool = False,
    device: str = "auto",
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, object]:
    """Run the benchmark suite on ``device`` (see :mod:`impasto.bench`): a JSON-ready dict with ``machine``,
    ``quick`` and ``sections`` (each with ``weights`` -- installed, packaged or random of the real size --,
    ``results`` rows and ``elapsed_s``). ``cancel`` raises ``Cancelled(partial)``, ``partial`` the same dict with
    the sections finished so far. Events: Started, a Progress per finished section (``info["section"]``)."""
    from .bench import run_bench

    return run_bench(only, quick=quick, device=device, callback=callback, cancel=cancel)


def bench_table(report: Mapping[str, object]) -> list[str]:
    """A benchmark report (from :func:`bench`) as plain-text table lines."""
    from .bench import table

    return table(dict(report))


# --- photo-realistic transfer (impasto.fast.photoreal) -----------------------------------------------------


def photoreal_check(layer: str = "r41") -> None:
    """Raise WeightsError (one line saying how to get them) unless ``linear.<layer>`` and ``linear.spn`` are
    installed: call it before a long run."""
    from .errors import WeightsError
    from .zoo import store

    for name in (f"linear.{layer}", "linear.spn"):
        if not store.is_installed(name):
            raise WeightsError(
                f"photo-realistic transfer needs the {name} weights: run `impasto models download {name}` on a "
                f"connected machine, or `impasto models import {name} PATH/models.zip`"
            )


def photoreal(
    content: ImageInput,
    style: ImageInput,
    *,
    layer: str = "r41",
    content_mask: ImageInput | None = None,
    style_mask: ImageInput | None = None,
    smooth: bool = True,
    size: int | None = None,
    device: str = "auto",
    models: ModelCache | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> Image.Image:
    """Photo-realistic transfer (Li et al. 2019): linear ``layer`` transfer, the SPN filter, affine smoothing.

    ``content``, ``style``: paths or PIL images. ``content_mask``/``style_mask`` (both or neither): colour-labelled
    images (pure black, blue, green, light blue, red, purple, yellow, white; each pixel takes the nearest), resized
    nearest-neighbour to their image; each content region takes the statistics of the same-coloured style region,
    or of the whole style when the style mask lacks that colour. ``smooth``: the reference's local affine
    smoothing (edge-preserving; about 3 s at 512 px on one CPU core). ``size``: longest output side in px (None
    keeps the content's). Needs the ``linear.<layer>`` and ``linear.spn`` weights (WeightsError saying how to get
    them). Events: Started (total 3, or 2 without smoothing; ``info``: model, device), then per stage
    (``transfer``, ``spn``, ``smooth``) a Preview and a Progress (``info["stage"]``), then Finished (the image).
    ``cancel`` is checked before each stage: ``Cancelled.partial`` is the latest stage's image (or None).
    Returns an RGB PIL image.
    """
    from .fast.photoreal import MODEL_NAMES, STAGES, PhotorealOptions, PhotorealStylizer

    opts = PhotorealOptions(layer=layer, size=size, smooth=smooth)
    opts.validate()
    if (content_mask is None) != (style_mask is None):
        raise ConfigError("give both a content mask and a style mask, or neither")
    photo, style_img = _as_image(content), _as_image(style)
    masks = [None if m is None else _as_image(m) for m in (content_mask, style_mask)]
    stylizer = PhotorealStylizer(layer, device=device, models=default_models if models is None else models)
    total = len(STAGES) if smooth else len(STAGES) - 1
    info = {"model": f"{MODEL_NAMES[layer]} + {MODEL_NAMES['spn']}", "device": str(stylizer.device)}
    watch = Stopwatch()
    emit(callback, Started(total=total, info=info))

    def on_stage(i: int, name: str, image: object) -> None:
        from .media import tensor_to_pil

        emit(callback, Preview(step=i + 1, image=tensor_to_pil(image), info={"stage": name}))  # type: ignore[arg-type]
        emit(callback, Progress(step=i + 1, total=total, elapsed=watch(), info={"stage": name}))

    out = stylizer.stylize(
        photo, style_img, masks[0], masks[1], opts, on_stage=None if callback is None else on_stage, cancel=cancel
    )
    emit(callback, Finished(result=out, elapsed=watch()))
    return out


# --- quality scores (impasto.score) ------------------------------------------------------------------------

# LPIPS: impasto's own implementation (impasto.nets.lpips; torchmetrics' and piq's need torchvision), weights
# through the zoo: lpips.alex + alexnet.torch, or lpips.vgg + vgg16.torch (impasto.zoo.lpips_format)


def _lpips_net(lpips: bool | str | None) -> str | None:
    """``lpips`` as a network name: None (off), "alex" (True) or "vgg"; ConfigError for anything else."""
    if lpips is None or lpips is False:
        return None
    from .zoo.lpips_format import NETS

    if lpips is True:
        return "alex"
    if isinstance(lpips, str) and lpips in NETS:
        return lpips
    raise ConfigError(f"lpips must be True, False or one of {', '.join(NETS)}, not {lpips!r}")


def _score_source(network: str | os.PathLike[str] | None):  # noqa: ANN202
    """``(feature source, name, cache key)`` of ``network``: a registry name, a VGG/NIN ``.pth`` file, or None
    (the network ``paint`` uses by default)."""
    from pathlib import Path

    from .zoo import torch_formats

    text = None if network is None else os.fspath(network)
    if text is not None and (Path(text).exists() or text.endswith((".pth", ".pt"))):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"network file {text!r} does not exist or is not a file")
        source = torch_formats.open_feature_source(None, path)
        return source, source.display, (str(path.resolve()), path.stat().st_mtime_ns)
    name = torch_formats.resolve_model(text, None)
    source = torch_formats.open_feature_source(name, None)
    return source, name, name


def score(
    output: ImageInput,
    *,
    content: ImageInput | None = None,
    style: ImageInput | None = None,
    network: str | os.PathLike[str] | None = None,
    lpips: bool | str = False,
    device: str = "auto",
) -> dict:
    """Quality scores of ``output`` (see :mod:`impasto.score` for the formulas) as a JSON-ready dict:

    ``{"content": {"ssim", "psnr"} | None, "style": {"gram", "w2", "color_swd"} | None, "network": str | None}``.
    ``content``: the photo, resized to the output's size; SSIM/PSNR on luminance (PSNR ``inf`` when identical).
    ``style``: the style image, resized so its longest side is the output's (as ``paint`` sizes it at
    ``style_scale=1``); Gram and Gaussian W2 distances in ``network``'s default style layers, averaged, and the
    colour sliced Wasserstein distance. ``network``: a registry name or a VGG/NIN ``.pth`` file; default: the
    network ``paint`` uses by default (``vgg19.caffe`` when installed, else ``mobilenetv2.magenta``).
    ``lpips``: True (= "alex") or "vgg" adds ``content["lpips"]``, LPIPS v0.1 (Zhang et al. 2018) of the output
    and the resized content photo, where its weight sets are installed (``lpips.alex`` + ``alexnet.torch``, or
    ``lpips.vgg`` + ``vgg16.torch``); otherwise the result has ``"skipped": {"lpips": reason}`` (one line naming
    the commands that install them).
    """
    from .devices import resolve_device
    from .study.scoring import score_picture

    if content is None and style is None:
        raise ConfigError("score needs a content photo and/or a style image to compare the output with")
    lpips_net = _lpips_net(lpips)
    if lpips_net is not None and content is None:
        raise ConfigError("lpips compares the output with the content photo; give content= too")
    dev = resolve_device(device)
    out_image = _as_image(output)
    content_image = _as_image(content) if content is not None else None
    styles = [_as_image(style)] if style is not None else []
    source = name = source_key = None
    if styles:
        source, name, source_key = _score_source(network)
    return score_picture(
        out_image, content_image, styles, source=source, name=name or "", key=source_key, device=dev,
        models=default_models, lpips=lpips_net,
    )  # fmt: skip


# --- painting by optimisation (impasto.gatys) --------------------------------------------------------------

from .gatys.config import PaintConfig  # noqa: E402 - re-exported for the CLI; light (no torch)

if TYPE_CHECKING:
    from .gatys.compat import NeuralStylePictures
    from .gatys.optimize import PaintPlan


def _style_list(styles: ImageInput | Sequence[ImageInput]) -> list[Image.Image]:
    """Style images from a path, an image, a folder (its images, sorted) or a list of these."""
    from pathlib import Path

    from .imaging import expand_inputs

    items = [styles] if isinstance(styles, (str, os.PathLike, Image.Image)) else list(styles)
    out: list[Image.Image] = []
    for item in items:
        if isinstance(item, Image.Image):
            out.append(_as_image(item))
        elif Path(item).is_dir():
            out.extend(load_image(p) for p in expand_inputs([str(item)]))
        else:
            out.append(load_image(item))
    if not out:
        raise ConfigError("at least one style image is needed")
    return out


def _paint_inputs(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    cfg: PaintConfig,
    init_image: ImageInput | None,
    models: ModelCache | None = None,
) -> tuple[Image.Image, list[Image.Image], Image.Image | Callable[[], Image.Image] | None]:
    """The content, style and init images of a painting run, loaded and checked against ``cfg`` (whose ``init``
    is resolved: :meth:`PaintConfig.resolve_choices`). With ``init="stylized"`` the init is a function that makes
    the fast network's stylisation (gatys may not import fast: the dependency points fast <- api), called only
    when the run starts from it -- not when it resumes from a checkpoint."""
    from .fast.magenta import stylized_start
    from .gatys.multidevice import parse_devices

    style_images = _style_list(styles)
    cfg.validate(num_styles=len(style_images))
    content_image = _as_image(content)
    if cfg.init == "stylized":

        def start() -> Image.Image:
            return stylized_start(
                content_image, style_images, cfg.blend_weights(len(style_images)), cfg.image_size,
                parse_devices(cfg.gpu)[0], default_models if models is None else models,
            )  # fmt: skip

        return content_image, style_images, start
    init = init_image if init_image is not None else cfg.init_image
    return content_image, style_images, _as_image(init) if (init is not None and cfg.init == "image") else None


def paint(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    config: PaintConfig | None = None,
    *,
    init_image: ImageInput | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    score: bool = False,
    models: ModelCache | None = None,
    **options: object,
) -> PaintResult:
    """Paint ``content`` in the style of ``styles`` by optimisation (Gatys et al.; neural-style-pt's options).

    ``styles``: a path, an image, a folder or a list of these. ``config``: a :class:`PaintConfig`; keyword
    ``options`` override its fields (``paint(c, s, num_iterations=200, seed=1)``). ``init_image`` (or
    ``config.init_image``) is the start when ``init="image"``; ``init="stylized"`` starts from Magenta's arbitrary
    network's stylisation of the content at ``image_size`` (made here, kept in ``models``). Returns a PaintResult
    whose ``image`` is (1, 3, H, W) RGB in [0, 1] (``pictures()``: as PIL), with ``elapsed`` and ``info``; events
    go to ``callback`` (Preview: an RGB PIL image, ``raw`` (3, H, W) in [0, 1]); ``cancel`` raises Cancelled
    whose ``partial`` is the latest image, or None when no step was taken in this call.

    ``score=True``: ``result.info["scores"]`` holds the painting's quality scores, as :func:`score` gives them for
    its saved 8-bit picture (content SSIM/PSNR; Gram, W2 and colour distances in the painting network's default
    style layers; blend-weighted over several styles). The network is opened once and kept in ``models``
    (default: :data:`default_models`) for both the painting and the scores: two extra forward passes. Should the
    scoring fail (out of memory at print size, an image too small for the layers) the painting is still
    returned, with ``info["scores"]`` None and ``info["scores_skipped"]`` saying why.
    """
    from .gatys.optimize import paint as _paint
    from .study.scoring import feature_source, score_paint_result

    cfg = (config or PaintConfig()).replace(**options) if options else (config or PaintConfig())
    cfg.validate()
    cache = models if models is not None else default_models
    # the network first (kept in ``models``): its recommendations decide init and the style loss
    source = feature_source(cfg.model, cfg.model_file, disable_check=cfg.disable_check, models=cache)
    cfg = cfg.resolve_choices(source.recommended)
    content_image, style_images, init_pil = _paint_inputs(content, styles, cfg, init_image, cache)
    if not score:
        return _paint(
            content_image, style_images, cfg, init_image=init_pil, callback=callback, cancel=cancel, source=source
        )
    result = _paint(
        content_image, style_images, cfg, init_image=init_pil, callback=callback, cancel=cancel, source=source
    )
    try:  # a painting is never lost to its scores: a failure here (memory, a tiny image) only skips them
        result.info["scores"] = score_paint_result(result, content_image, style_images, source=source, models=cache)
    except (ConfigError, MemoryError, RuntimeError) as exc:
        # any RuntimeError: torch reports a failed allocation as "out of memory" (CUDA) or "can't allocate memory"
        # (CPU), and whatever it was, the painting the user waited for is returned and saved
        log.warning("scoring the painting failed: %s", exc)
        result.info["scores"] = None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result.info["scores_skipped"] = f"scores skipped: {first[:200]}"
    return result


def paint_record(result: PaintResult, output: str | os.PathLike[str] | None = None) -> dict:
    """A painting's settings and scores, JSON-ready (``impasto paint`` writes it to ``OUT.json``): ``output``,
    ``settings`` (fields that differ from the defaults), ``config`` (every field), ``scores`` (None unless painted
    with ``score=True``), ``seconds``, ``steps``, ``final_loss``, ``model``; infinities as strings."""
    from .study.scoring import paint_record as _record

    return _record(result, output)


def paint_plan(config: PaintConfig) -> PaintPlan:
    """What :func:`paint` will do with ``config``, before any work: ``scales`` ((size, iterations) per scale),
    ``total`` steps and ``preview_steps`` (the steps with a Preview event: neural-style-pt's ``out_<t>.png``)."""
    from .gatys.optimize import plan

    return plan(config)


def paint_resume_point(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    config: PaintConfig,
    *,
    init_image: ImageInput | None = None,
) -> int | None:
    """The step a ``config.resume`` run would continue from (None: no checkpoint at ``config.checkpoint_path``, so
    it starts from the beginning). Raises ConfigError when the checkpoint was made with other settings or inputs.
    Cheap (no network is loaded): callers use it to decide, before the work, whether outputs may be replaced."""
    from .gatys.optimize import resume_point
    from .study.scoring import feature_source

    if config.resume and (config.init is None or config.style_loss is None):  # as paint resolves them
        source = feature_source(
            config.model, config.model_file, disable_check=config.disable_check, models=default_models
        )
        config = config.validate().resolve_choices(source.recommended)
    content_image, style_images, init = _paint_inputs(content, styles, config, init_image)
    # a stylised start is left unmade: the checkpoint's fingerprint does not hold its pixels
    return resume_point(content_image, style_images, config, init_image=None if callable(init) else init)


def neural_style_pictures(
    content: ImageInput | None, *, image_size: int, preprocessing: str, original_colors: bool
) -> NeuralStylePictures:
    """A callable turning a painting ((3, H, W) or (1, 3, H, W) float in [0, 1]) into the 8-bit RGB PIL image
    neural-style-pt would save: truncated to 8 bits and, with ``original_colors``, given ``content``'s colours on
    8-bit YCbCr. ``preprocessing``: the network's contract (``Started.info["preprocessing"]``)."""
    from .gatys.compat import NeuralStylePictures

    image = _as_image(content) if (content is not None and original_colors) else None
    return NeuralStylePictures(image, image_size, preprocessing, original_colors)


# --- optimiser study (impasto.study) -----------------------------------------------------------------------

if TYPE_CHECKING:
    from .study.compare import RunHook, StudyConfig
    from .study.presets import Experiment
    from .study.records import Run, SavedRecords


def compare_optimizers(
    content: ImageInput,
    style: ImageInput,
    *,
    optimizers: Sequence[str] | None = None,
    lr: float | Mapping[str, float] = 10.0,
    iterations: int = 100,
    size: int = 300,
    model: str | None = None,
    model_file: str | None = None,
    seed: int = 0,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    resume: SavedRecords | None = None,
    on_run: RunHook | None = None,
    executor: Executor | None = None,
    score: bool = True,
    models: ModelCache | None = None,
    **paint_options: object,
) -> StudyResult:
    """Run several optimisers on one painting loss from one starting image; returns every record.

    ``optimizers``: names from gd, adadelta, rmsprop, adam, adagrad, lbfgs (all by default); an entry may pin
    its rate as ``adam@1``. ``lr``: one rate for all, or a mapping per optimiser, in 0–255 pixel units as in
    the original study (converted internally to the network's range); L-BFGS takes 1 unless named. The loss is
    ``impasto paint``'s (same network choice, layers and weights; ``paint_options`` override PaintConfig
    fields). Events: a Started and Progress stream per optimiser (``info["optimizer"]``), then Finished.

    ``on_run(run, so_far)`` is called as each optimiser finishes (to save ``study_records_json(so_far)``);
    ``resume`` (from :func:`load_study_records`) supplies runs that finished earlier, which are not run again; its
    fingerprint must match these settings (else ConfigError naming the first difference). ``cancel`` stops the
    running optimiser at its next evaluation and raises ``Cancelled(partial=StudyResult)`` holding every finished
    run, the stopped one's records so far and the rest marked not run (``partial.complete`` is False). The result
    has ``elapsed`` (seconds), ``info``, ``fingerprint`` and ``pictures()`` (the final images as RGB PIL).

    ``score`` (default True): each finished run's ``scores`` are its final image's quality scores (as
    :func:`score` gives them, in the study's network, which ``models`` keeps loaded). ``executor``
    (:func:`open_executor`): one task per optimiser (``"impasto.study.compare:run_optimizer"``), each building
    the same loss and starting image, so the numbers equal the one-process study's (wall times aside); content
    and style must then be paths every worker can read. Progress is then per optimiser (not per iteration).
    """
    import torch

    from .gatys.optimize import prepare
    from .study.compare import StudyConfig, compare
    from .study.objective import GatysObjective
    from .study.records import OPTIMIZERS
    from .study.report import first_difference

    watch = Stopwatch()
    if isinstance(lr, Mapping):
        study = StudyConfig(optimizers=tuple(optimizers or OPTIMIZERS), lr=dict(lr), iterations=iterations)
    else:
        study = StudyConfig(optimizers=tuple(optimizers or OPTIMIZERS), default_lr=float(lr), iterations=iterations)
    study.validate()
    # the study's optimisers all start from neural-style-pt's seeded noise (as the original study), whatever start
    # the network recommends for a painting; paint_options may still ask for init="image"
    cfg = PaintConfig(
        image_size=size, seed=seed, model=model, model_file=model_file, num_iterations=iterations, init="random"
    )
    cfg = cfg.replace(**paint_options) if paint_options else cfg
    cfg.validate(num_styles=1)
    content_image, style_image = _as_image(content), _as_image(style)
    fingerprint = _study_fingerprint(content_image, style_image, study, cfg, paint_options)
    done: dict[str, Run] = {}
    if resume is not None:
        diff = first_difference(resume.fingerprint, fingerprint)
        if diff is not None:
            raise ConfigError(
                f"cannot resume: {resume.source} was made with other settings ({diff}); "
                "run with the same settings, or pass --overwrite to start afresh"
            )
        done = {name: run for name, run in resume.runs.items() if name in study.optimizers}
    from .study.scoring import feature_source, score_picture, source_key

    cache = models if models is not None else default_models
    source = feature_source(cfg.model, cfg.model_file, disable_check=cfg.disable_check, models=cache)
    problem = prepare(content_image, [style_image], cfg, source=source)
    objective = GatysObjective(problem)
    h, w = problem.content01.shape[-2:]

    def scores_of(run: Run) -> dict:
        from .media import tensor_to_pil

        return score_picture(
            tensor_to_pil(run.image), content_image, [style_image], source=source, name=source.display,
            key=source_key(cfg.model, cfg.model_file, cfg.disable_check), device=problem.device, models=cache,
        )  # fmt: skip

    info = {
        "preprocessing": problem.contract,
        "layers": list(problem.order),
        "content_weight": problem.config.content_weight,
        "style_weight": problem.config.style_weight,
        "tv_weight": problem.config.tv_weight,
        "lr_units": "0-255 pixel levels",
        "device": str(problem.device),
        "resumed": [name for name in study.optimizers if name in done],
    }
    try:
        if executor is not None:
            result = _compare_over(
                executor, content, style, study, cfg, done, size=(w, h), network=objective.network, seed=seed,
                callback=callback, cancel=cancel, on_run=on_run, fingerprint=fingerprint, score=score,
            )  # fmt: skip
        else:
            with torch.enable_grad():
                result = compare(
                    objective, study, size=(w, h), seed=seed, callback=callback, cancel=cancel, done=done,
                    on_run=on_run, fingerprint=fingerprint, score=scores_of if score else None,
                )  # fmt: skip
    except Cancelled as exc:
        if exc.partial is not None:
            exc.partial.info.update(info)
            exc.partial.elapsed = watch()
        raise
    result.info.update(info)
    result.elapsed = watch()
    return result


def _compare_over(
    executor: Executor, content: ImageInput, style: ImageInput, study: StudyConfig, cfg: PaintConfig,
    done: Mapping[str, Run], *, size: tuple[int, int], network: str, seed: int, callback: Callback | None,
    cancel: CancelToken | None, on_run: RunHook | None, fingerprint: Mapping[str, object], score: bool,
) -> StudyResult:  # fmt: skip
    """:func:`compare_optimizers` over an executor: one Task per optimiser not in ``done``."""
    import dataclasses

    from .study.compare import gather
    from .study.report import run_from_dict

    if isinstance(content, Image.Image) or isinstance(style, Image.Image):
        raise ConfigError("a study over workers takes the content and style as file paths (every worker reads them)")
    paint = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    plain = {f.name: getattr(study, f.name) for f in dataclasses.fields(study)}
    plain["lr"] = dict(plain["lr"])
    tasks = [
        Task(key=name, fn="impasto.study.compare:run_optimizer", kwargs={
            "content": os.path.abspath(os.fspath(content)), "style": os.path.abspath(os.fspath(style)),
            "paint": paint, "study": plain, "optimizer": name, "score": score,
        })
        for name in study.optimizers if name not in done
    ]  # fmt: skip
    results = ((r.key, run_from_dict(r.value)) for r in executor.run(tasks, callback=callback, cancel=cancel))
    return gather(  # the executor emits Started/Progress/Finished for the job
        results, study, network=network, size=size, seed=seed, done=done, on_run=on_run, fingerprint=fingerprint
    )


def _study_fingerprint(
    content: Image.Image, style: Image.Image, study: StudyConfig, cfg: PaintConfig, options: Mapping[str, object]
) -> dict[str, object]:
    """What decides a study's numbers (the device aside): a resumed study must match it exactly."""
    import hashlib
    from pathlib import Path

    def pixels(img: Image.Image) -> str:
        return hashlib.sha256(repr(img.size).encode() + img.tobytes()).hexdigest()[:20]

    weights = None
    if cfg.model_file:
        p = Path(str(cfg.model_file))
        weights = f"{p.name} ({p.stat().st_size} bytes)" if p.is_file() else p.name
    return {
        "content": pixels(content),
        "style": pixels(style),
        "size": cfg.image_size,
        "seed": cfg.seed,
        "iterations": study.iterations,
        "optimizers": [f"{name}@{study.rate(name):g}" for name in study.optimizers],
        "lbfgs_history": study.lbfgs_history,
        "model": cfg.model,
        "model_file": weights,
        "options": {k: repr(v) for k, v in sorted(options.items()) if k != "gpu"},
    }


def study_optimizers() -> tuple[str, ...]:
    """The optimisers a study can compare: gd, adadelta, rmsprop, adam, adagrad, lbfgs."""
    from .study.records import OPTIMIZERS

    return OPTIMIZERS


def study_presets() -> Mapping[str, Sequence[Experiment]]:
    """Named sets of experiments (``"seed-study"``: the six of the original comparison); each Experiment has
    ``folder``, ``title``, ``size``, ``iterations``, ``optimizers`` and ``default_lr``."""
    from .study.presets import PRESETS

    return PRESETS


def study_output_names() -> tuple[str, ...]:
    """The files a study writes into its folder (``records.json`` last)."""
    from .study.report import OUTPUT_FILES, RECORDS_FILE

    return (*OUTPUT_FILES, RECORDS_FILE)


def study_files(result: StudyResult) -> dict[str, bytes]:
    """Every file of a study in memory, name -> bytes: losses.csv, summary.json, loss_vs_iteration.png,
    loss_vs_time.png, results.png and records.json. A partial result (``complete`` False) is marked incomplete in
    summary.json (``"complete": false``, a status per optimiser), losses.csv (a status column), plots and grid."""
    from .study.report import outputs

    return outputs(result)


def study_records_json(result: StudyResult) -> str:
    """``records.json`` for the finished runs of ``result`` (a study so far), to resume from."""
    from .study.report import records_json

    return records_json(result)


def load_study_records(folder: str | os.PathLike[str]) -> SavedRecords | None:
    """The runs saved in ``folder/records.json`` (None when there is no such file), for ``resume=``; ConfigError
    when the file is not a study record."""
    from pathlib import Path

    from .study.report import RECORDS_FILE, parse_records

    path = Path(folder) / RECORDS_FILE
    if not path.is_file():
        return None
    return parse_records(path.read_text(encoding="utf-8", errors="replace"), source=str(path))


def study_index_html(pages: Sequence[tuple[str, str, StudyResult | None]]) -> str:
    """The index page of a preset's folder: (sub-folder, title, result) per experiment; a partial result is marked
    stopped and None marks one that did not run."""
    from .study.report import index_html, summary

    return index_html([(folder, title, None if r is None else summary(r)) for folder, title, r in pages])


# --- sweeps (impasto.study.sweep) -------------------------------------------------------------------------

if TYPE_CHECKING:
    from .study.sweep import SweepPlan, SweepResult


def sweep_ranks() -> tuple[str, ...]:
    """What a sweep can be ranked by: ``balanced`` (mean of the SSIM and W2 ranks), ssim, psnr, gram, w2,
    color_swd, seconds."""
    from .study.sweep import RANK_NAMES

    return RANK_NAMES


def sweep_grid_fields() -> list[str]:
    """The PaintConfig fields a sweep's grid may vary."""
    from .study.sweep import grid_fields

    return sorted(grid_fields())


def sweep_plan(
    content: str | os.PathLike[str],
    styles: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    grid: str | Sequence[str],
    folder: str | os.PathLike[str],
    config: PaintConfig | None = None,
    *,
    models: ModelCache | None = None,
) -> SweepPlan:
    """Check a sweep before any work: parse ``grid`` (``"style_weight=1e2,1e3 seed=0,1"``; list values joined with
    ``+``; see :mod:`impasto.study.sweep`), build every entry's PaintConfig from ``config`` (the fixed settings)
    and validate it (layer names against the network included), read the images. ``styles``: files or folders.
    Raises ConfigError / ImageError (one sentence) and writes nothing."""
    from .imaging import expand_inputs
    from .study.sweep import plan_sweep

    items = [styles] if isinstance(styles, (str, os.PathLike)) else list(styles)
    style_paths = [str(p) for p in expand_inputs([os.fspath(s) for s in items])] if items else []
    cache = models if models is not None else default_models
    return plan_sweep(content, style_paths, config or PaintConfig(), grid, folder, models=cache)


def sweep_check(plan: SweepPlan, *, resume: bool = False, overwrite: bool = False) -> list[dict | None]:
    """Before any work: ``plan.folder`` is missing or empty, or ``resume`` continues the sweep there (an entry is
    kept when its image and json were made with the same config and inputs; other settings are refused), or
    ``overwrite`` paints every entry again. Returns the kept record (or None) per entry; writes nothing."""
    from .study.sweep import check_folder

    return check_folder(plan, resume=resume, overwrite=overwrite)


def sweep(
    plan: SweepPlan,
    done: Sequence[dict | None] | None = None,
    *,
    rank_by: str = "balanced",
    executor: Executor | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    on_entry: Callable[[dict, int, int], None] | None = None,
    models: ModelCache | None = None,
) -> SweepResult:
    """Paint every entry of ``plan`` not in ``done`` (:func:`sweep_check`), each to ``FOLDER/<slug>.png`` with its
    settings and scores in ``FOLDER/<slug>.png.json``, then write results.json, results.csv (ranked by ``rank_by``,
    :func:`sweep_ranks`), contact-sheet.jpg and index.html. ``executor`` (:func:`open_executor`): one task per
    entry (``"impasto.study.sweep:run_entry"``), which every worker must be able to read and write at the
    plan's paths; None: in this process. Ctrl-C (``cancel``) raises Cancelled whose ``partial`` is the
    SweepResult of what finished (results written, marked incomplete)."""
    from .study.sweep import run_sweep

    cache = models if models is not None else default_models
    return run_sweep(
        plan, list(done) if done is not None else [None] * len(plan.entries), rank_by=rank_by, executor=executor,
        callback=callback, cancel=cancel, on_entry=on_entry, models=cache,
    )  # fmt: skip


# --- weight sets (impasto.zoo) -----------------------------------------------------------------------------

if TYPE_CHECKING:
    from pathlib import Path

    from .zoo.store import Status, Verified


class _WeightSets:
    """``api.models``: the registry of named weight sets and the local cache of their files.

    Records are frozen ``impasto.zoo.registry.WeightSet``s; a ``Status`` is a record plus its installed files
    (``.installed``, ``.paths``); ``verify`` gives one ``Verified(name, ok, message, sha256)`` per set. This is the
    zoo of files on disk, not the networks loaded in memory (those are ``default_models``, a ModelCache).
    """

    def info(self, name: str) -> Status:
        """The record of ``name`` and its installed files; UnknownModelError suggesting close names otherwise."""
        from .zoo import store

        return store.status(name)

    def path(self, name: str) -> Path:
        """The installed file of ``name`` (its folder for multi-file sets); WeightsError naming the fix if absent."""
        from .zoo import store

        return store.installed_path(name)

    def download(
        self, name: str, *, urls: Sequence[str] | None = None, force: bool = False, progress: bool = True
    ) -> list[Path]:
        """Download ``name`` into the cache (size, sha256 and format checked before anything is placed).

        ``urls``: a mirror, one URL per file. A valid cached copy is kept unless ``force``. Returns its files.
        """
        from .zoo import store

        return store.download(name, urls=tuple(urls) if urls else None, force=force, progress=progress)

    def import_file(self, name: str, source: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
        """Copy a file (a folder for multi-file sets) into the cache after checking it; ``source`` is never moved
        or changed. An installed copy is replaced only with ``force``. Returns the cached files."""
        from .zoo import store

        return store.import_files(name, source, force=force)

    def verify(self, name: str | None = None) -> list[Verified]:
        """Check the installed files of ``name`` (WeightsError if not installed) or of every installed set."""
        from .zoo import store

        return store.verify_installed(name)

    def home(self) -> Path:
        """The cache root: ``$IMPASTO_HOME`` or the platform cache folder."""
        from .zoo import store

        return store.home()

    def paint_network(self) -> tuple[str, bool]:
        """The network ``paint`` uses when given none, and whether that is the offline default (not VGG)."""
        from .zoo.torch_formats import OFFLINE_DEFAULT, resolve_model

        name = str(resolve_model(None, None))
        return name, name == OFFLINE_DEFAULT

    def list(self) -> list[Status]:  # last in the class: its name would shadow the builtin in the hints above
        """Every registered weight set with its status, sorted by name."""
        from .zoo import store

        return store.statuses()


models = _WeightSets()


# --- training (impasto.fast.train) -------------------------------------------------------------------------

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from .fast.train import Checkpointer, TrainLinearConfig, TrainResult, TrainSPNConfig

    NetInput = str | os.PathLike[str] | nn.Module | None
    CheckpointInput = str | os.PathLike[str] | Checkpointer | None


def train_config(kind: str, **options: object) -> TrainLinearConfig | TrainSPNConfig:
    """A validated :class:`~impasto.fast.train.TrainLinearConfig` (``kind="linear"``) or ``TrainSPNConfig``
    (``"spn"``) from its field values (the rest keep the reference's defaults); ConfigError for a bad value."""
    from .fast.train import TrainLinearConfig, TrainSPNConfig

    if kind not in ("linear", "spn"):
        raise ConfigError(f"unknown training kind {kind!r}; use linear or spn")
    cls = TrainLinearConfig if kind == "linear" else TrainSPNConfig
    try:
        return cls(**options).validate()  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"bad training option: {exc}") from None


def _training_images(folder: str | os.PathLike[str], what: str) -> list[Path]:
    from pathlib import Path

    from .imaging import list_images

    p = Path(folder)
    if not p.exists():
        raise ConfigError(f"{what} folder {p} does not exist")
    if not p.is_dir():
        raise ConfigError(f"{what} folder {p} is a file; give the folder of images")
    found = list_images(p)
    if not found:
        raise ConfigError(f"no images found in {what} folder {p}")
    return found


def _checkpointer(checkpoint: CheckpointInput) -> Checkpointer | None:
    from .fast.train import FileCheckpointer

    if checkpoint is None or hasattr(checkpoint, "save"):
        return checkpoint  # type: ignore[return-value]
    return FileCheckpointer(checkpoint)  # type: ignore[arg-type]


def train_linear(
    content_dir: str | os.PathLike[str],
    style_dir: str | os.PathLike[str],
    config: TrainLinearConfig | None = None,
    *,
    vgg: NetInput = None,
    decoder: NetInput = None,
    loss_net: NetInput = None,
    checkpoint: CheckpointInput = None,
    resume: bool = False,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    models: ModelCache | None = None,
    **options: object,
) -> TrainResult:
    """Train a linear transformation module (Li et al. 2019, the reference's Train.py) on the images of two folders.

    ``config`` (keyword ``options`` override its fields: ``steps=``, ``layer=``, ``lr=``, ...). ``vgg``,
    ``decoder``, ``loss_net``: the frozen ``vgg_<layer>.pth``, ``dec_<layer>.pth`` and ``vgg_r51.pth`` as paths or
    modules (default: the installed ``linear.<layer>`` and ``linear.vgg_r51``; WeightsError saying how to get them).
    ``checkpoint``: a path or a Checkpointer for snapshots (every ``checkpoint_every`` steps and on cancel);
    ``resume`` continues from it. Returns a TrainResult whose ``state_dict`` has the reference's keys
    (:func:`save_trained` writes it); events and ``cancel`` as :func:`impasto.fast.train.train_linear`.
    """
    from .fast.train import FrozenNets, TrainLinearConfig
    from .fast.train import train_linear as _train

    cfg = (config or TrainLinearConfig()).replace(**options) if options else (config or TrainLinearConfig())
    contents, styles = _training_images(content_dir, "content"), _training_images(style_dir, "style")
    return _train(
        contents, styles, cfg.validate(), nets=FrozenNets(vgg, decoder, loss_net),
        checkpointer=_checkpointer(checkpoint), resume=resume, callback=callback, cancel=cancel,
        models=default_models if models is None else models,
    )  # fmt: skip


def train_spn(
    content_dir: str | os.PathLike[str],
    config: TrainSPNConfig | None = None,
    *,
    vgg: NetInput = None,
    decoder: NetInput = None,
    checkpoint: CheckpointInput = None,
    resume: bool = False,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    models: ModelCache | None = None,
    **options: object,
) -> TrainResult:
    """Train the SPN filter of the photo-realistic path (the reference's TrainSPN.py) on a folder of photos.

    As :func:`train_linear`; the result's ``state_dict`` has ``r41_spn.pth``'s keys.
    """
    from .fast.train import FrozenNets, TrainSPNConfig
    from .fast.train import train_spn as _train

    cfg = (config or TrainSPNConfig()).replace(**options) if options else (config or TrainSPNConfig())
    contents = _training_images(content_dir, "content")
    return _train(
        contents, cfg.validate(), nets=FrozenNets(vgg, decoder), checkpointer=_checkpointer(checkpoint),
        resume=resume, callback=callback, cancel=cancel, models=default_models if models is None else models,
    )  # fmt: skip


def train_resume_point(checkpoint: CheckpointInput, kind: str) -> int | None:
    """The step a resumed ``kind`` (``linear``/``spn``) run would continue from; None with no checkpoint yet.
    Cheap (no network is loaded): the CLI decides with it, before the work, whether outputs may be replaced."""
    from .fast.train import checkpoint_step

    ckpt = _checkpointer(checkpoint)
    return None if ckpt is None else checkpoint_step(ckpt, kind)


def save_trained(result: TrainResult, path: str | os.PathLike[str]) -> Path:
    """Write a trained module as the reference does (``torch.save`` of its state dict, the reference's keys),
    atomically; it loads into the reference and through ``impasto models import linear.<layer> PATH``."""
    from .media import atomic_write
    from .snapshots import save_state

    return atomic_write(path, lambda tmp: save_state(dict(result.state_dict), tmp))


# --- BigGAN (impasto.gan) ----------------------------------------------------------------------------------

if TYPE_CHECKING:
    from collections.abc import Collection

    from .gan.interpolation import InterpolateResult
    from .gan.model import BigGAN
    from .gan.sampling import GenerateResult


def classes(query: str | int | None = None) -> list:
    """ImageNet classes matching ``query`` (all 1000 for None): a number, WordNet id or part of a name.

    Returns ``impasto.gan.ImageNetClass`` records (index, wnid, names), exact name matches first.
    """
    from .gan.classes import search

    return search(query)


def resolve_class(name: str | int) -> int:
    """The ImageNet index (0-999) of a class name, synonym, everyday word, number or WordNet id.

    UnknownModelError (exit 2) with close names for one impasto does not know.
    """
    from .gan.classes import resolve

    return resolve(name)


def class_name(index: int) -> str:
    """The common name of ImageNet class ``index`` (0-999), e.g. 933 -> ``"cheeseburger"``."""
    from .gan.classes import name_of

    return name_of(resolve_class(index))


def explain_class(name: str | int) -> str | None:
    """One line saying which class a word that is not a class name became (``"dog"`` -> 253 ...), or None."""
    from .gan.classes import explain

    return explain(name)


def class_suggestions(query: str, n: int = 5) -> list:
    """ImageNet classes whose names are close to ``query`` (for "did you mean"), best first."""
    from .gan.classes import suggestions

    return suggestions(query, n=n)


def class_coverage_note(query: str | None) -> str | None:
    """For an everyday word (``dog``): one line saying how many classes it covers and which one it gives."""
    from .gan.classes import coverage_note

    return coverage_note(query) if query else None


def new_seed() -> int:
    """A fresh noise seed (from the OS): draw it before a run to know the run's file names up front."""
    from .gan.sampling import new_seed as _new_seed

    return _new_seed()


def _biggan(
    model: str | os.PathLike[str], device: str, precision: str, bn_stats: str, models: ModelCache | None
) -> BigGAN:
    """Load (or reuse from ``models``, default ``default_models``) a BigGAN; keyed on the folder, its files'
    mtimes, the device, the precision and the batch-norm statistics rule."""
    from pathlib import Path

    from .devices import resolve_device
    from .gan.model import load_model
    from .zoo import biggan_format

    folder = biggan_format.resolve(model)
    stamp = tuple(
        (Path(folder) / n).stat().st_mtime_ns for n in (biggan_format.CONFIG_NAME, biggan_format.WEIGHTS_NAME)
        if (Path(folder) / n).exists()
    )  # fmt: skip
    key = ("biggan", str(Path(folder).resolve()), stamp, str(resolve_device(device)), precision, bn_stats)
    cache = default_models if models is None else models
    return cache.get(key, lambda: load_model(folder, device=device, precision=precision, bn_stats=bn_stats))


def generate(
    class_names: str | int | Sequence[str | int],
    *,
    samples: int = 1,
    truncation: float = 0.4,
    seed: int | None = None,
    model: str | os.PathLike[str] = "biggan-deep.256",
    device: str = "auto",
    precision: str = "auto",
    bn_stats: str = "reference",
    batch_size: int = 8,
    skip: Collection[int] = (),
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    models: ModelCache | None = None,
) -> GenerateResult:
    """BigGAN samples: ``samples`` images of each class (names, synonyms, numbers or WordNet ids).

    ``truncation`` in (0, 1]; ``seed`` None draws a fresh one (recorded in the result). ``model``: a registered
    name (``biggan-deep.128/256/512``) or a folder with config.json + pytorch_model.bin. ``precision``: auto
    (fp16 on CUDA, bf16 on CPUs with fast bf16, else fp32), fp32, bf16 or fp16. ``skip``: rows (``i * samples +
    j``: class i, sample j) not to draw, e.g. those a killed run already wrote; the rest are exactly as without
    ``skip``. ``models``: where the loaded network is kept (default ``default_models``). Returns
    ``GenerateResult``: ``images`` (len(rows), 3, H, W) float32 in [-1, 1], class-major, ``pictures()`` and
    ``grid()`` as PIL images, ``elapsed``, ``info``. Emits a Preview per image (``info["row"]``) after each batch.
    Inputs are checked before the model loads.
    """
    from dataclasses import replace

    from .gan.classes import resolve
    from .gan.sampling import GenerateConfig
    from .gan.sampling import generate as _generate

    names = [class_names] if isinstance(class_names, (str, int)) else list(class_names)
    config = GenerateConfig(
        classes=tuple(resolve(c) for c in names), samples=samples, truncation=truncation, seed=seed,
        batch_size=batch_size, skip=frozenset(int(r) for r in skip),
    ).validated()  # fmt: skip
    net = _biggan(model, device, precision, bn_stats, models)
    result = _generate(net, config, callback=callback, cancel=cancel)
    return replace(result, info={**result.info, "model": str(model)})


def interpolate(
    from_class: str | int,
    to_class: str | int,
    *,
    seed_from: int | None = None,
    seed_to: int | None = None,
    steps: int = 10,
    samples: int = 1,
    truncation: float = 0.4,
    slerp: bool = False,
    model: str | os.PathLike[str] = "biggan-deep.256",
    device: str = "auto",
    precision: str = "auto",
    bn_stats: str = "reference",
    batch_size: int = 8,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    models: ModelCache | None = None,
) -> InterpolateResult:
    """Frames from (from_class, seed_from) to (to_class, seed_to; default seed_from), linear or spherical
    (``slerp``) in noise and class-embedding space. ``steps`` >= 2 frames include both endpoints, which equal
    the plain ``generate`` samples. ``models``: where the loaded network is kept (default ``default_models``).
    Returns ``InterpolateResult``: ``frames`` (steps, samples, 3, H, W) float32 in [-1, 1], ``pictures()`` (one
    PIL image per frame, the samples side by side), ``grid()``, ``elapsed``, ``info``."""
    from dataclasses import replace

    from .gan.classes import resolve
    from .gan.interpolation import InterpolateConfig
    from .gan.interpolation import interpolate as _interpolate

    config = InterpolateConfig(
        class_from=resolve(from_class), class_to=resolve(to_class), seed_from=seed_from, seed_to=seed_to,
        steps=steps, samples=samples, truncation=truncation, spherical=slerp, batch_size=batch_size,
    ).validated()  # fmt: skip
    net = _biggan(model, device, precision, bn_stats, models)
    result = _interpolate(net, config, callback=callback, cancel=cancel)
    return replace(result, info={**result.info, "model": str(model)})


# --- workers (impasto.workers) -----------------------------------------------------------------------------

# Independent pieces of a job (a folder's photos, a batch's samples, a sweep's settings) as small picklable Tasks,
# run by an Executor: this process (workers=1), a local process pool, or a Ray cluster (the `ray` extra).
from .workers import Executor, Task, TaskResult, WorkerError, default_workers, open_executor  # noqa: E402, F401


def stylize_tasks(
    pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    *,
    styles: Sequence[str | os.PathLike[str]] = (),
    style_weights: Sequence[float] | None = None,
    preset: str | None = None,
    size: int | None = None,
    strength: float = 1.0,
    preserve_color: bool = False,
    device: str = "auto",
    method: str | None = None,
    layer: str = "r41",
    working_size: int | str | None = DEFAULT_WORKING_SIZE,
) -> list[Task]:
    """One Task per (input photo, output path) for an Executor: each stylises its photo and writes its output.

    Options as for :func:`stylize` (``working_size`` included), style images as paths (every worker reads
    them). Everything is checked here, once, before any worker starts (options, method, linear weights
    installed, style images readable); the method is decided here so every worker uses the same. The outputs
    equal :func:`stylize`'s pixel for pixel at the same torch thread count.
    """
    from dataclasses import asdict

    from .fast.magenta import StylizeOptions

    # checks every option and reads the style images; loads no network
    _stylize_setup(
        styles=styles, style_weights=style_weights, preset=preset, size=size, strength=strength,
        preserve_color=preserve_color, device=device, models=ModelCache(), method=method, layer=layer,
        working_size=working_size,
    )  # fmt: skip
    chosen = stylize_method(method, layer=layer, preset=preset is not None)
    opts = StylizeOptions(
        size=size, strength=strength, preserve_color=preserve_color, working_size=parse_working_size(working_size)
    )
    options = asdict(opts)  # every field, so a worker builds the very same options
    common = {
        "styles": [os.fspath(os.path.abspath(s)) for s in styles], "style_weights": style_weights,
        "preset": preset, "options": options, "method": chosen, "layer": layer, "device": device,
    }  # fmt: skip
    return [
        Task(key=os.fspath(dest), fn="impasto.workers.tasks:stylize_image",
             kwargs={"input": os.fspath(os.path.abspath(src)), "output": os.fspath(os.path.abspath(dest)), **common})
        for src, dest in pairs
    ]  # fmt: skip


def generate_tasks(
    class_names: str | int | Sequence[str | int],
    paths: Mapping[int, str | os.PathLike[str]],
    *,
    samples: int,
    seed: int,
    truncation: float = 0.4,
    model: str | os.PathLike[str] = "biggan-deep.256",
    device: str = "auto",
    precision: str = "auto",
    bn_stats: str = "reference",
    batch_size: int = 8,
    meta: Mapping[str, object] | None = None,
) -> list[Task]:
    """Tasks that draw the BigGAN rows in ``paths`` (row ``i * samples + j`` -> its PNG path) and write them.

    The rows are taken in order, ``batch_size`` to a task: the same batches :func:`generate` with ``skip`` = the
    other rows draws, so each picture equals the single-process one bit for bit. ``meta`` goes into each PNG's
    ``impasto`` text chunk with the row's class and sample (as ``impasto generate --each`` writes it). The seed
    must be given (every task draws from it). Checked here: classes, counts, truncation.
    """
    from .gan.classes import resolve
    from .gan.sampling import GenerateConfig

    names = [class_names] if isinstance(class_names, (str, int)) else list(class_names)
    classes = tuple(resolve(c) for c in names)
    GenerateConfig(classes=classes, samples=samples, truncation=truncation, seed=seed, batch_size=batch_size
                   ).validated()  # fmt: skip
    rows = sorted(int(r) for r in paths)
    common = {
        "classes": list(classes), "samples": samples, "seed": seed, "truncation": truncation,
        "model": os.fspath(model), "device": device, "precision": precision, "bn_stats": bn_stats,
        "batch_size": batch_size, "meta": dict(meta or {}),
    }  # fmt: skip
    tasks = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        tasks.append(Task(
            key=f"rows {chunk[0]}-{chunk[-1]}", fn="impasto.workers.tasks:generate_rows",
            kwargs={"rows": chunk, "paths": {r: os.fspath(os.path.abspath(paths[r])) for r in chunk}, **common},
        ))  # fmt: skip
    return tasks
