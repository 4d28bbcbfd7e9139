"""Painting by optimisation (Gatys et al. 2016), step for step as neural-style-pt does it.

Outline of :func:`paint`:

1. size the images as neural-style-pt does (longest side ``image_size``, truncated; styles at
   ``image_size * style_scale``; PIL bilinear) and preprocess them for the network's contract;
2. open the feature network, resolve and check the layers, build it only up to the deepest one (frozen);
3. compute the content targets and the blended style Gram targets once, under ``no_grad``;
4. initialise the image (noise ``0.001 * randn(C, H, W)`` from a CPU generator seeded with ``seed`` -- the same
   numbers as neural-style-pt's ``torch.manual_seed(seed); torch.randn(...)`` -- or the content/init image);
5. optimise with L-BFGS (``max_iter = num_iterations``, no line search, ``tolerance_grad = tolerance_change =
   -1``, ``history_size = lbfgs_num_correction``) or Adam (``lr = learning_rate``), one evaluation per step.

Like neural-style-pt, step ``t`` is the ``t``-th evaluation of the loss, and its Progress/Preview and the final
image show the image that evaluation saw (so the final image is the one whose loss is the last reported; the
optimiser's last update is never evaluated, exactly as upstream).

Events: Started, Progress every step (per-layer losses ``content:<layer>``, ``style:<layer>``, ``tv``, ``total``;
``info["print"]`` is True on ``print_iter`` steps), Preview (a (3, H, W) image in [0, 1]) every ``save_iter``
steps except the last, Finished. A CancelToken is checked before every evaluation: Cancelled(partial) carries the
latest image (1, 3, H, W) in [0, 1]. No printing, no files (checkpoints go through a Checkpointer, see below).

Extras beyond neural-style-pt, all off by default (a run without them is bit-identical to upstream):

* ``fast``: :func:`evaluate` runs a bf16 channels_last copy of the network with fused fp32 losses
  (:mod:`impasto.gatys.fastpath`);
* ``scales``: coarse-to-fine painting, each scale re-prepared at its size and started from the previous result
  upsampled (:func:`paint`);
* ``checkpoint_every``/``resume``: snapshots handed to a :class:`~impasto.gatys.checkpoint.Checkpointer`. Why a
  hook and not a callback event: a snapshot must hold the optimiser's state, which only the loop can see between
  steps, and resuming must feed it back in before the first step -- a two-way exchange an event stream cannot do.
  The loop builds plain tensors/dicts and never touches the disk; :mod:`impasto.gatys.checkpoint` owns the file
  format and the atomic write, so a CLI, a test (in memory) or a web job choose where snapshots live.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..errors import Cancelled, ConfigError
from ..events import Callback, CancelToken, Finished, Preview, Progress, Started, Stopwatch, emit
from ..imaging import transfer_luminance
from ..zoo import torch_formats
from . import checkpoint, fastpath
from . import losses as L
from .config import PaintConfig
from .multidevice import SplitFeatureNet, parse_devices, split_boundaries
from .preprocess import deprocess, neural_style_size, preprocess, resize_like_neural_style

log = logging.getLogger(__name__)

__all__ = ["PaintResult", "Problem", "evaluate", "loss_labels", "paint", "prepare", "save_steps"]


@dataclass
class PaintResult:
    """What :func:`paint` returns.

    ``image``: (1, 3, H, W) RGB float in [0, 1] on the CPU (original colours applied when asked); ``raw``: the
    optimised image in the network's input space; ``losses``: one dict per step (see module docstring).
    """

    image: torch.Tensor
    raw: torch.Tensor
    content: torch.Tensor  # (1, 3, H, W) the resized content image in [0, 1]
    losses: list[dict[str, float]]
    steps: int
    model: str
    preprocessing: str
    elapsed: float
    config: PaintConfig

    @property
    def final_loss(self) -> float:
        return self.losses[-1]["total"] if self.losses else float("nan")


@dataclass
class Problem:
    """Everything one optimisation needs, built by :func:`prepare` (no mutable run state)."""

    config: PaintConfig  # resolved: no "the network's" (None) values left
    net: Any  # feature network: layer_names, features(x, names)
    contract: str
    model: str
    device: torch.device  # where the image lives and the losses are summed
    content01: torch.Tensor  # (1, 3, H, W) in [0, 1], CPU
    init: torch.Tensor  # (1, 3, H, W) starting image, network space, on device
    content_targets: dict[str, torch.Tensor]  # layer -> (1, C, h, w)
    style_targets: dict[str, torch.Tensor]  # layer -> (C, C) blended Gram
    content_weights: dict[str, float]
    style_weights: dict[str, float]
    order: list[str] = field(default_factory=list)  # tapped layers in network order
    # The fast path (config.fast): a bf16/channels_last copy of net that evaluate() runs instead (None: exact fp32).
    fast_net: Any = None
    fast_dtype: torch.dtype | None = None


def scale_plan(config: PaintConfig) -> list[tuple[int, int]]:
    """``(image_size, iterations)`` per scale: one entry without ``scales``, else one per scale, coarse to fine."""
    if not config.scales:
        return [(config.image_size, config.num_iterations)]
    iters = config.scale_iterations or (config.num_iterations,)
    if len(iters) == 1:
        iters = iters * len(config.scales)
    return list(zip(config.scales, iters, strict=True))


def save_steps(config: PaintConfig) -> list[int]:
    """Steps at which a Preview is emitted (neural-style-pt's ``out_<t>.png`` files), the last step excluded.

    With ``scales`` steps count across all scales (the total is the sum of their iterations).
    """
    if config.save_iter <= 0:
        return []
    total = sum(n for _, n in scale_plan(config))
    return [t for t in range(config.save_iter, total, config.save_iter)]


@contextlib.contextmanager
def _backend_flags(config: PaintConfig, devices: Sequence[torch.device]) -> Iterator[None]:
    """neural-style-pt's ``-backend``/``-cudnn_autotune``/seeded determinism, mapped to today's torch, restored after.

    ``backend`` is accepted for compatibility only: cuDNN is always on for CUDA (neural-style-pt's ``nn`` turned it
    off, which today only makes runs slower) and the CPU backends are chosen by torch itself.
    """
    if not any(d.type == "cuda" for d in devices):
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.deterministic)
    cudnn.benchmark = bool(config.cudnn_autotune)
    cudnn.deterministic = config.seed >= 0 or cudnn.deterministic
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = saved


@contextlib.contextmanager
def _too_small_is_config_error(display: str, config: PaintConfig) -> Iterator[None]:
    """An image too small for the network's pooling (NIN below ~64 px, say) is a usage mistake, not a crash."""
    try:
        yield
    except RuntimeError as exc:
        if "too small" not in str(exc) and "Kernel size can't be greater" not in str(exc):
            raise
        raise ConfigError(
            f"image_size {config.image_size} (style_scale {config.style_scale}) is too small for {display} at the "
            "layers asked for; use a larger image_size/style_scale or shallower layers"
        ) from None


def _ordered_unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def prepare(
    content: Image.Image,
    styles: Sequence[Image.Image],
    config: PaintConfig,
    *,
    init_image: Image.Image | None = None,
    source: torch_formats.FeatureSource | None = None,
) -> Problem:
    """Open the network, size and preprocess the images, compute targets and the starting image."""
    devices = parse_devices(config.gpu)
    device = devices[0]
    if source is None:
        source = torch_formats.open_feature_source(config.model, config.model_file, disable_check=config.disable_check)
    config = config.resolve(source.recommended)
    content_layers = _ordered_unique(config.content_layers or source.default_content_layers)
    style_layers = _ordered_unique(config.style_layers or source.default_style_layers)
    source.check_layers(content_layers, "content layer")
    source.check_layers(style_layers, "style layer")
    order = [n for n in source.layer_names if n in set(content_layers) | set(style_layers)]

    if len(devices) > 1:
        if source.weights is None:
            raise ConfigError(f"{source.display} cannot be split over several devices; give one device in gpu")
        net = source.build(order, "cpu", config.pooling)
        bounds = split_boundaries(
            config.multidevice_strategy,
            net.layer_names,
            len(devices),
            content_layers=content_layers,
            style_layers=style_layers,
            tv=config.tv_weight > 0,
        )
        net = SplitFeatureNet(net, devices, bounds)
    else:
        net = source.build(order, device, config.pooling)

    # Images, sized and resampled like neural-style-pt.
    size = neural_style_size(content.size, config.image_size)
    content01 = resize_like_neural_style(content, size)
    contract = source.preprocessing
    content_in = preprocess(content01, contract).to(device)
    style_size = int(config.image_size * config.style_scale)
    blend = config.blend_weights(len(styles))

    with torch.no_grad(), _too_small_is_config_error(source.display, config):
        feats = net.features(content_in, content_layers)
        content_targets = {n: feats[n].detach() for n in content_layers}
        grams: dict[str, list[torch.Tensor]] = {n: [] for n in style_layers}
        for style in styles:
            style01 = resize_like_neural_style(style, neural_style_size(style.size, style_size))
            feats = net.features(preprocess(style01, contract).to(device), style_layers)
            for n in style_layers:
                grams[n].append(L.gram_matrix(feats[n]))
            del feats
        style_targets = {n: L.blend_grams(grams[n], blend) for n in style_layers}
    del grams

    content_weights = {n: float(config.content_weight) for n in content_layers}
    style_weights = {n: float(config.style_weight) for n in style_layers}
    if config.normalize_weights:
        content_weights = {n: L.normalized_weight(w, content_targets[n].shape) for n, w in content_weights.items()}
        style_weights = {n: L.normalized_weight(w, style_targets[n].shape) for n, w in style_weights.items()}

    if config.init == "random":
        gen = torch.Generator(device="cpu")
        if config.seed >= 0:
            gen.manual_seed(config.seed)
        else:
            gen.seed()
        _, c, h, w = content_in.shape
        # neural-style-pt: torch.randn(C, H, W).mul(0.001).unsqueeze(0), drawn on the CPU then moved.
        init = torch.randn(c, h, w, generator=gen).mul(0.001).unsqueeze(0).to(device)
    elif init_image is not None:
        init = preprocess(resize_like_neural_style(init_image, size), contract).to(device)
    else:
        init = content_in.clone()

    fast_net, fast_dtype = None, None
    if config.fast:
        if len(devices) > 1:
            raise ConfigError("the fast path (fast) runs on one device; give one device in gpu or drop fast")
        fast_net, fast_dtype = fastpath.fast_network(net, device)

    return Problem(
        config=config,
        net=net,
        contract=contract,
        model=source.display,
        device=device,
        content01=content01,
        init=init,
        content_targets=content_targets,
        style_targets=style_targets,
        content_weights=content_weights,
        style_weights=style_weights,
        order=order,
        fast_net=fast_net,
        fast_dtype=fast_dtype,
    )


def _to_image(raw: torch.Tensor, problem: Problem, config: PaintConfig) -> torch.Tensor:
    """Network-space image -> (1, 3, H, W) RGB [0, 1] on the CPU, with original colours when asked."""
    img = deprocess(raw, problem.contract)
    if config.original_colors:
        img = transfer_luminance(img, problem.content01)
    return img


def loss_labels(problem: Problem) -> list[str]:
    """Term names :func:`evaluate` reports, in order: ``content:<layer>``, ``style:<layer>``, ``tv``, ``total``."""
    labels = [f"content:{n}" for n in problem.order if n in problem.content_targets]
    labels += [f"style:{n}" for n in problem.order if n in problem.style_targets]
    if problem.config.tv_weight > 0:
        labels.append("tv")
    return labels + ["total"]


def evaluate(problem: Problem, img: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The painting loss of ``img`` (network space, (1, 3, H, W)): the total as a 0-d tensor, and every term.

    total = sum over content layers of content_loss + sum over style layers of style_loss + tv_loss, each as
    :mod:`impasto.gatys.losses` defines it. The caller runs ``backward()``. The study (``impasto.study``) uses
    this same function, so every optimiser there sees exactly the loss ``impasto paint`` minimises.
    """
    config, dev = problem.config, problem.device
    ng = config.normalize_gradients
    # TV first: neural-style-pt's TV module sits before the network, and building the autograd graph in the
    # same order makes the backward pass accumulate the image gradient in the same order (bit-identical runs).
    tv = L.tv_loss(img, config.tv_weight) if config.tv_weight > 0 else None
    if problem.fast_net is not None:
        return _evaluate_fast(problem, img, tv)
    content_terms: dict[str, torch.Tensor] = {}
    style_terms: dict[str, torch.Tensor] = {}
    # Each layer's losses are built as soon as its activation exists (content, then style), so the autograd
    # graph -- and the order gradients are summed in -- is that of neural-style-pt's net with loss modules.
    net = problem.net
    taps = net.iter_features if hasattr(net, "iter_features") else lambda x, n: net.features(x, n).items()
    for n, f in taps(img, problem.order):
        if n in problem.content_targets:
            term = L.content_loss(f, problem.content_targets[n], problem.content_weights[n], ng)
            content_terms[n] = term.to(dev)
        if n in problem.style_targets:
            term = L.style_loss(L.gram_matrix(f), problem.style_targets[n], problem.style_weights[n], ng)
            style_terms[n] = term.to(dev)
    terms = [content_terms[n] for n in problem.order if n in content_terms]
    terms += [style_terms[n] for n in problem.order if n in style_terms]
    if tv is not None:
        terms.append(tv)
    loss: Any = 0  # summed in neural-style-pt's order: content, style, TV
    for t in terms:
        loss = loss + t
    values = torch.stack([t.detach() for t in terms] + [loss.detach()]).tolist()  # one device sync
    return loss, dict(zip(loss_labels(problem), values, strict=True))


def _fused(
    fn: type[torch.autograd.Function], f: torch.Tensor, target: torch.Tensor, weight: float, ng: bool
) -> torch.Tensor:
    if not ng:
        return fn.apply(f, target, weight)
    return L.scale_gradients(fn.apply(f, target, 1.0), weight) * weight


def _evaluate_fast(
    problem: Problem, img: torch.Tensor, tv: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, float]]:
    """:func:`evaluate` on the fast path (see :mod:`impasto.gatys.fastpath`): same terms, same order, fp32 values."""
    ng = problem.config.normalize_gradients
    net = problem.fast_net
    x = img.to(problem.fast_dtype)
    if img.device.type in ("cpu", "cuda"):
        x = x.contiguous(memory_format=torch.channels_last)  # (1, 3, H, W) NHWC in memory, like every activation
    taps = net.iter_features if hasattr(net, "iter_features") else lambda x, n: net.features(x, n).items()
    content_terms: dict[str, torch.Tensor] = {}
    style_terms: dict[str, torch.Tensor] = {}
    for n, f in taps(x, problem.order):
        if n in problem.content_targets:
            content_terms[n] = _fused(
                fastpath.ContentLoss, f, problem.content_targets[n], problem.content_weights[n], ng
            )
        if n in problem.style_targets:
            style_terms[n] = _fused(fastpath.StyleLoss, f, problem.style_targets[n], problem.style_weights[n], ng)
    terms = [content_terms[n] for n in problem.order if n in content_terms]
    terms += [style_terms[n] for n in problem.order if n in style_terms]
    if tv is not None:
        terms.append(tv)
    loss: Any = 0
    for t in terms:
        loss = loss + t
    values = torch.stack([t.detach() for t in terms] + [loss.detach()]).tolist()
    return loss, dict(zip(loss_labels(problem), values, strict=True))


# L-BFGS's first step is ``min(1, 1/|g|_1)`` along the gradient -- from noise or from the content image, a change far
# below bf16's resolution (2^-9 relative), so on the fast path the next gradient differs from the last only by
# rounding noise, the curvature estimate is garbage and the steps stay tiny: a 256 px run on a random VGG-19 stalled
# at 96% of its starting loss after 100 steps where fp32 reached 1.6%. The first steps therefore run in exact fp32
# until the optimiser has a real curvature estimate and steps on the image's own scale; Adam (steps of
# ``learning_rate``) does not need it.
FAST_LBFGS_EXACT_STEPS = 10


@dataclass
class _Scale:
    """Where one scale's optimisation sits in the whole run (built by :func:`paint` for each scale)."""

    index: int = 0
    offset: int = 0  # steps done by the earlier scales
    total: int = 0  # steps of the whole run (all scales); 0: this scale's num_iterations
    multi: bool = False  # several scales: Progress info carries the scale
    preview_at: frozenset[int] = frozenset()  # global steps with a Preview
    history: list[dict[str, float]] = field(default_factory=list)  # losses of the earlier scales
    checkpointer: Any = None  # checkpoint.Checkpointer or None
    fingerprint: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    resume: dict[str, Any] | None = None  # a snapshot of this scale to continue from


def _optimise(
    problem: Problem,
    callback: Callback | None,
    cancel: CancelToken | None,
    clock: Stopwatch,
    scale: _Scale | None = None,
) -> PaintResult:
    config = problem.config
    run = scale or _Scale(total=config.num_iterations, preview_at=frozenset(save_steps(config)))
    iterations = config.num_iterations
    total_steps = run.total or iterations
    every = config.checkpoint_every if run.checkpointer is not None else 0
    # neural-style-pt runs all L-BFGS iterations inside one optimizer.step(); a checkpoint needs the optimiser's
    # state between iterations, which L-BFGS only writes back when step() returns, so with checkpoints on each
    # step() runs one iteration (max_iter=1). Without a line search that is the same arithmetic in the same order
    # (tests/test_gatys_extras.py checks it is bit-identical); the default path stays upstream's.
    stepwise = run.checkpointer is not None

    img = problem.init.detach().clone().requires_grad_(True)
    # Fast path + L-BFGS: the first steps are exact fp32 (see FAST_LBFGS_EXACT_STEPS).
    exact_steps = FAST_LBFGS_EXACT_STEPS if (problem.fast_net is not None and config.optimizer == "lbfgs") else 0
    exact = dataclasses.replace(problem, fast_net=None, fast_dtype=None) if exact_steps else problem
    if config.optimizer == "lbfgs":
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
            [img],
            max_iter=1 if stepwise else iterations,
            tolerance_change=-1,
            tolerance_grad=-1,
            history_size=config.lbfgs_num_correction,
            line_search_fn=None if config.lbfgs_line_search == "none" else config.lbfgs_line_search,
            # with a line search, cap evaluations at the iterations asked for, so num_iterations=300 means 300
            # steps (torch's default 5/4 budget ran 306); without one, evaluations = iterations as upstream
            max_eval=None if config.lbfgs_line_search == "none" else iterations,
        )
        loop_val = iterations - 1 if stepwise else 1  # neural-style-pt: one optimizer.step() runs all iterations
    else:
        optimizer = torch.optim.Adam([img], lr=config.learning_rate)
        loop_val = iterations - 1

    step = 0
    history: list[dict[str, float]] = list(run.history)
    final_raw: torch.Tensor | None = None
    if run.resume is not None:
        state = run.resume
        with torch.no_grad():
            img.copy_(state["image"].to(img.device, img.dtype))
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        history = [dict(h) for h in state["history"]]
        if step >= iterations:
            final_raw = state["evaluated"].to(img.device)

    def closure() -> torch.Tensor:
        nonlocal step, final_raw
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled", partial=_to_image(img.detach(), problem, config))
        step += 1
        optimizer.zero_grad()
        loss, record = evaluate(exact if step <= exact_steps else problem, img)
        loss.backward()
        history.append(record)
        if step == iterations:
            final_raw = img.detach().clone()
        t = run.offset + step  # counted across all scales
        printing = config.print_iter > 0 and t % config.print_iter == 0
        info: dict[str, Any] = {"print": printing}
        if run.multi:
            info.update(scale=max(problem.content01.shape[-2:]), scale_index=run.index)
        emit(callback, Progress(t, total_steps, record, clock(), info=info))
        if t in run.preview_at:
            emit(callback, Preview(t, _to_image(img.detach(), problem, config)[0]))  # (3, H, W) in [0, 1]
        return loss

    def save_checkpoint() -> None:
        # ``evaluated``: this scale's result once its last step is done (img has moved on by one update then).
        run.checkpointer.save(
            {
                "format": checkpoint.FORMAT,
                "fingerprint": run.fingerprint,
                "settings": run.settings,
                "scale_index": run.index,
                "step": step,
                "image": img.detach().cpu().clone(),
                "evaluated": (final_raw if final_raw is not None else img.detach()).cpu().clone(),
                # A deep copy: state_dict() shares the live tensors L-BFGS keeps updating in place.
                "optimizer": copy.deepcopy(optimizer.state_dict()),
                "history": [dict(h) for h in history],
            }
        )

    saved_at = step
    line_search = config.optimizer == "lbfgs" and config.lbfgs_line_search != "none"
    while step <= loop_val:
        if stepwise and line_search:
            # One iteration per step() leaves the line search torch's default budget of evaluations
            # (max_eval = 5/4 max_iter would give it none), within what is left of the run's evaluations.
            optimizer.param_groups[0]["max_eval"] = 1 + max(1, min(25, iterations - step))
        optimizer.step(closure)
        # ">=": with a line search one step() may run several evaluations and jump past a multiple of ``every``.
        if stepwise and ((every and step - saved_at >= every) or step >= iterations):
            save_checkpoint()
            saved_at = step

    if config.optimizer == "lbfgs" and config.lbfgs_line_search != "none":
        final_raw = img.detach().clone()  # with a line search the accepted point need not be the last evaluated
    raw = (final_raw if final_raw is not None else img.detach()).cpu()
    return PaintResult(
        image=_to_image(raw, problem, config),
        raw=raw,
        content=problem.content01,
        losses=history,
        steps=run.offset + step,
        model=problem.model,
        preprocessing=problem.contract,
        elapsed=clock(),
        config=config,
    )


def _upsampled_init(previous: PaintResult, problem: Problem) -> torch.Tensor:
    """The previous scale's result (before original colours) resized to this scale, in network space."""
    prev01 = deprocess(previous.raw, previous.preprocessing)  # (1, 3, h, w) in [0, 1]
    h, w = problem.content01.shape[-2:]
    up = torch.nn.functional.interpolate(prev01, size=(h, w), mode="bicubic", align_corners=False).clamp_(0, 1)
    return preprocess(up, problem.contract).to(problem.device)


def paint(
    content: Image.Image,
    styles: Sequence[Image.Image],
    config: PaintConfig | None = None,
    *,
    init_image: Image.Image | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    source: torch_formats.FeatureSource | None = None,
    checkpointer: checkpoint.Checkpointer | None = None,
) -> PaintResult:
    """Paint ``content`` (a PIL RGB image) in the style of ``styles`` by optimisation; see the module docstring.

    ``init_image`` is used when ``config.init == "image"`` (else the content image); ``source`` an already opened
    feature network (to paint many images without re-reading the file).

    Extras (all off by default): ``config.fast`` (:mod:`impasto.gatys.fastpath`); ``config.scales``: paint at each
    size in turn, each scale re-running :func:`prepare` at its size (targets recomputed, styles at
    ``size * style_scale``) and starting from the previous result upsampled (bicubic in [0, 1]); Progress steps
    then count across all scales and ``info`` carries ``scale`` (longest side) and ``scale_index``;
    ``config.checkpoint_every``/``resume``: snapshots go to ``checkpointer`` (default: a
    :class:`~impasto.gatys.checkpoint.FileCheckpointer` at ``config.checkpoint_path``) and a resumed run continues
    from the last one -- refused with a ConfigError when the settings or input images differ.
    """
    config = (config or PaintConfig()).validate(num_styles=len(styles))
    plan = scale_plan(config)
    total = sum(n for _, n in plan)
    run = _Scale(total=total, multi=len(plan) > 1, preview_at=frozenset(save_steps(config)))
    if config.checkpoint_every or config.resume:
        if checkpointer is None:
            if not config.checkpoint_path:
                raise ConfigError("checkpoint_every/resume need a checkpoint_path (where the checkpoint file goes)")
            checkpointer = checkpoint.FileCheckpointer(config.checkpoint_path)
        run.checkpointer = checkpointer
        run.fingerprint = checkpoint.fingerprint(config, content, styles, init_image)
        run.settings = checkpoint.settings(config)
    snapshot = None
    if config.resume and checkpointer is not None:
        snapshot = checkpointer.load()
        if snapshot is not None:
            where = config.checkpoint_path or "given"
            checkpoint.check_resumable(snapshot, run.fingerprint, config, where)
    clock = Stopwatch()
    devices = parse_devices(config.gpu)
    if source is None and len(plan) > 1:  # open the file once for all scales
        source = torch_formats.open_feature_source(config.model, config.model_file, disable_check=config.disable_check)
    result: PaintResult | None = None
    with _backend_flags(config, devices):
        for index, (size, iterations) in enumerate(plan):
            start_at = int(snapshot["scale_index"]) if snapshot is not None else 0
            if index < start_at:
                run.offset += iterations
                continue
            scale_config = config.replace(image_size=size, num_iterations=iterations) if run.multi else config
            problem = prepare(content, styles, scale_config, init_image=init_image, source=source)
            if result is not None:
                problem.init = _upsampled_init(result, problem)
            if result is None:  # the first scale run (or resumed)
                emit(
                    callback,
                    Started(
                        total=total,
                        info={
                            "model": problem.model,
                            "size": tuple(problem.content01.shape[-2:]),
                            "device": str(problem.device),
                            "preprocessing": problem.contract,
                            "layers": list(problem.order),
                            **({"scales": [s for s, _ in plan]} if run.multi else {}),
                            **({"resumed_at": run.offset + int(snapshot["step"])} if snapshot is not None else {}),
                        },
                    ),
                )
            run.index = index
            run.resume = snapshot if (snapshot is not None and index == start_at) else None
            if run.resume is not None:
                run.history = []
            with torch.enable_grad():
                result = _optimise(problem, callback, cancel, clock, run)
            run.offset += iterations
            run.history = list(result.losses)
            run.resume = None
    assert result is not None  # plan is never empty
    if run.multi:
        result.config = result.config.replace(num_iterations=config.num_iterations)
    emit(callback, Finished(result, result.elapsed))
    return result
