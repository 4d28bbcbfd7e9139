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
optimiser's last update is never evaluated, exactly as upstream). ``num_iterations`` is a hard budget of
evaluations: a run never reports step ``N + 1`` of ``N``. Departure from neural-style-pt: its loop (``while
num_calls <= 1: optimizer.step()``) runs L-BFGS twice when ``num_iterations`` is 1, so it evaluates twice; impasto
evaluates once. Every other length is step for step upstream's.

Events: Started once the network is open (before the targets are computed, so a caller learns which network
paints before the slow part), Progress every step (per-layer losses ``content:<layer>``, ``style:<layer>``,
``tv``, ``total``; ``info["print"]`` is True on ``print_iter`` steps), Preview every ``save_iter`` steps except the
last (``image`` an RGB PIL image, ``raw`` the (3, H, W) float tensor in [0, 1] it was made from), Finished. A
CancelToken is checked before the targets, before every evaluation and between scales: Cancelled(partial) carries
the latest image (1, 3, H, W) in [0, 1] -- or None when this call has not taken a step yet (the starting noise is
nobody's work, and a resumed run's starting point is already in its checkpoint). No printing, no files
(checkpoints go through a Checkpointer, see below).

Extras beyond neural-style-pt, all off by default (a run without them is bit-identical to upstream):

* ``fast``: :func:`evaluate` runs a bf16 channels_last copy of the network with fused fp32 losses
  (:mod:`impasto.gatys.fastpath`);
* ``scales``: coarse-to-fine painting, each scale re-prepared at its size and started from the previous result
  upsampled (:func:`paint`);
* ``style_loss="w2"``: each style layer's loss is the Wasserstein-2 distance between the Gaussians (mean and
  covariance) of its features and of the style's (:func:`impasto.gatys.losses.w2_style_loss`), not the Gram loss;
* ``average``: each scale's result is the bias-corrected exponential moving average of the images its steps
  evaluated (:class:`IterateAverage`, as style-transfer-pytorch averages its iterates), reset at every scale; the
  next scale starts from it, Previews and a cancelled run's partial show it, while the losses reported are still
  those of the evaluated images. With a line search every evaluation, trial points included, enters the average;
* ``checkpoint_every``/``resume``: snapshots handed to a :class:`~impasto.gatys.checkpoint.Checkpointer`. Why a
  hook and not a callback event: a snapshot must hold the optimiser's state, which only the loop can see between
  steps, and resuming must feed it back in before the first step -- a two-way exchange an event stream cannot do.
  The loop builds plain tensors/dicts and never touches the disk; :mod:`impasto.gatys.checkpoint` owns the file
  format and the atomic write, so a CLI, a test (in memory) or a web job choose where snapshots live.

Process-wide state: none is changed, except ``torch.backends.cudnn.benchmark`` for a CUDA run that asks for
``cudnn_autotune`` (see :func:`_cudnn_autotune`). Randomness comes from a ``torch.Generator`` (never the global
RNG). Bit-exact repeats on CUDA also need ``torch.backends.cudnn.deterministic = True``, which is the caller's to
set (``impasto paint`` and ``impasto neural-style`` set it for a seeded run, as neural-style-pt does): a library
must not change it under other threads' feet.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..devices import keep_freed_memory
from ..errors import Cancelled, ConfigError
from ..events import Callback, CancelToken, Finished, Preview, Progress, Started, Stopwatch, emit
from ..imaging import transfer_luminance
from ..media import tensor_to_pil
from ..zoo import torch_formats
from . import checkpoint, fastpath, memory, tiled
from . import losses as L
from .config import PaintConfig
from .lbfgs import LBFGS
from .multidevice import SplitFeatureNet, parse_devices, split_boundaries
from .preprocess import deprocess, neural_style_size, preprocess, resize_like_neural_style

log = logging.getLogger(__name__)

__all__ = [
    "IterateAverage", "PaintPlan", "PaintResult", "Problem", "evaluate", "loss_labels", "paint", "plan", "prepare",
    "save_steps", "scale_plan", "split_budget",
]  # fmt: skip


# --- what a run returns and what it works on ----------------------------------------------------------------


@dataclass
class PaintResult:
    """What :func:`paint` returns.

    ``image``: (1, 3, H, W) RGB float in [0, 1] on the CPU (original colours applied when asked); ``raw``: the
    optimised image in the network's input space; ``losses``: one dict per step (see module docstring);
    ``elapsed``: seconds; ``info``: what ran where (``model``, ``device``, ``preprocessing``, ``layers``,
    ``size`` (H, W)). :meth:`pictures` gives the result as PIL images, the shape every method returns.
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
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        return self.losses[-1]["total"] if self.losses else float("nan")

    def pictures(self) -> list[Image.Image]:
        """The painting as a list of one RGB PIL image (8 bits, rounded to the nearest level)."""
        return [tensor_to_pil(self.image)]


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
    style_targets: dict[str, torch.Tensor]  # layer -> (C, C) blended Gram (style_loss="w2": the covariance)
    content_weights: dict[str, float]
    style_weights: dict[str, float]
    order: list[str] = field(default_factory=list)  # tapped layers in network order
    # The fast path (config.fast): a bf16/channels_last copy of net that evaluate() runs instead (None: exact fp32).
    fast_net: Any = None
    fast_dtype: torch.dtype | None = None
    # style_loss="w2": layer -> the style's mean and covariance (empty: the Gram loss).
    style_stats: dict[str, L.GaussianStats] = field(default_factory=dict)
    # The memory plan (impasto.gatys.memory): the exact tiled loss pass with tiles of this side in pixels (0: none)
    # and gradient checkpointing through the network (impasto.gatys.tiled); memory_plan is the Plan itself.
    tile_size: int = 0
    checkpointing: bool = False
    memory_plan: Any = None


# --- the plan: sizes, lengths, preview steps ----------------------------------------------------------------


def split_budget(total: int, sizes: Sequence[int]) -> list[int]:
    """Split ``total`` iterations over coarse-to-fine ``sizes``: ``n_k`` proportional to ``sizes[-1] / sizes[k]``.

    The rule: a scale's iterations are inversely proportional to its side, so its TIME (iterations x pixels) is
    proportional to its side -- with sqrt(2) steps each scale takes sqrt(2) times the time of the one before and
    1/sqrt(2) times its iterations. The cheap coarse scales take most of the iterations (they settle the layout and
    the large strokes, a pixel there covering 2-4 of the final one), the time is spent mostly at the fine scales
    (for 128..512: 36%, 25%, 18%, 13%, 9% of the iterations and 9%, 13%, 18%, 25%, 36% of the time), and the whole
    run costs about a quarter of ``total`` full-size iterations. Rounded by largest remainder, every scale at least
    1, summing exactly to ``total`` (which must be at least ``len(sizes)``: :meth:`PaintConfig.validate`).
    """
    weights = [sizes[-1] / s for s in sizes]
    shares = [total * w / sum(weights) for w in weights]
    counts = [max(1, int(x)) for x in shares]
    by_remainder = sorted(range(len(sizes)), key=lambda k: (shares[k] - int(shares[k]), sizes[k]), reverse=True)
    i = 0
    while sum(counts) < total:  # hand out what rounding down left, largest remainder first (ties: finer first)
        counts[by_remainder[i % len(sizes)]] += 1
        i += 1
    while sum(counts) > total:  # the max(1, .) floors took more than there was: take back from the largest
        counts[counts.index(max(counts))] -= 1
    return counts


def scale_plan(config: PaintConfig) -> list[tuple[int, int]]:
    """``(image_size, iterations)`` per scale: one entry without ``scales``, else one per scale, coarse to fine.

    With ``scales`` and no ``scale_iterations``, ``num_iterations`` is ONE budget split over the scales
    (:func:`split_budget`); ``scale_iterations`` gives each scale its own count (one number: the same for each).
    """
    if not config.scales:
        return [(config.image_size, config.num_iterations)]
    if config.scale_iterations is None:
        return list(zip(config.scales, split_budget(config.num_iterations, config.scales), strict=True))
    iters = config.scale_iterations
    if len(iters) == 1:
        iters = iters * len(config.scales)
    return list(zip(config.scales, iters, strict=True))


def save_steps(config: PaintConfig) -> list[int]:
    """Steps at which a Preview is emitted (neural-style-pt's ``out_<t>.png`` files), the last step excluded.

    Steps count across all scales (the total is the sum of their iterations). With several scales only the final
    scale's multiples of ``save_iter`` get one (its coarse predecessors are drafts), unless ``save_all_scales``.
    """
    if config.save_iter <= 0:
        return []
    scales = scale_plan(config)
    total = sum(n for _, n in scales)
    first = 1 if config.save_all_scales else total - scales[-1][1] + 1  # first step of the final scale
    return [t for t in range(config.save_iter, total, config.save_iter) if t >= first]


@dataclass(frozen=True)
class PaintPlan:
    """What a run of ``config`` will do, known before any work: for a caller that plans its outputs."""

    scales: tuple[tuple[int, int], ...]  # (image_size, iterations) per scale, coarse to fine
    total: int  # steps over all scales
    preview_steps: tuple[int, ...]  # steps with a Preview event


def plan(config: PaintConfig) -> PaintPlan:
    """The :class:`PaintPlan` of ``config`` (validated first)."""
    config.validate()
    scales = scale_plan(config)
    return PaintPlan(tuple(scales), sum(n for _, n in scales), tuple(save_steps(config)))


# --- preparing a problem: network, images, targets, start ---------------------------------------------------


@contextlib.contextmanager
def _cudnn_autotune(config: PaintConfig, devices: Sequence[torch.device]) -> Iterator[None]:
    """``cudnn_autotune`` (neural-style-pt's ``-cudnn_autotune``): cuDNN benchmark mode for this run, then restored.

    Touched only for a CUDA run that asks for it; a CPU run, or one that does not ask, leaves every flag alone.
    ``torch.backends.cudnn.benchmark`` is PROCESS-WIDE: while this run holds it, any other thread's CUDA work is
    autotuned too, and two such runs overlapping restore in the wrong order. It is done anyway because the user
    asked for exactly this switch and torch has no per-call equivalent; a multi-threaded host (the web studio)
    should leave ``cudnn_autotune`` off and set the flag once itself. ``backend`` is accepted for compatibility
    only: cuDNN is always on for CUDA and the CPU backends are chosen by torch itself.
    """
    if not (config.cudnn_autotune and any(d.type == "cuda" for d in devices)):
        yield
        return
    cudnn = torch.backends.cudnn
    saved = cudnn.benchmark
    cudnn.benchmark = True  # process-wide (see above)
    try:
        yield
    finally:
        cudnn.benchmark = saved


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


def _w(value: float | None) -> float:
    """A weight of a resolved config (:meth:`PaintConfig.resolve` fills every "the network's" None)."""
    if value is None:
        raise ConfigError("the paint config was not resolved against a network (PaintConfig.resolve)")
    return value


def _ordered_unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


@dataclass
class _Network:
    """An opened, built feature network and the layers a run taps (step 2 of the outline)."""

    config: PaintConfig  # resolved with the network's recommendations
    source: torch_formats.FeatureSource
    net: Any
    devices: list[torch.device]
    content_layers: list[str]
    style_layers: list[str]
    order: list[str]  # tapped layers in network order

    @property
    def device(self) -> torch.device:
        return self.devices[0]


def _build_net(source: torch_formats.FeatureSource, order: list[str], devices: list[torch.device], config: PaintConfig,
               content_layers: list[str], style_layers: list[str]) -> Any:  # fmt: skip
    """The frozen network up to the deepest tapped layer, on one device or split over several."""
    if len(devices) == 1:
        return source.build(order, devices[0], config.pooling)
    if source.weights is None:
        raise ConfigError(f"{source.display} cannot be split over several devices; give one device in gpu")
    net = source.build(order, "cpu", config.pooling)
    bounds = split_boundaries(
        config.multidevice_strategy,
        net.layer_names,
        len(devices),
        content_layers=content_layers,
        style_layers=style_layers,
        tv=_w(config.tv_weight) > 0,
    )
    return SplitFeatureNet(net, devices, bounds)


def _open_network(config: PaintConfig, source: torch_formats.FeatureSource | None) -> _Network:
    """Open the feature network (unless given), resolve the config against it, check the layers, build it."""
    devices = parse_devices(config.gpu)
    if source is None:
        source = torch_formats.open_feature_source(config.model, config.model_file, disable_check=config.disable_check)
    config = config.resolve(source.recommended)
    content_layers = _ordered_unique(config.content_layers or source.default_content_layers)
    style_layers = _ordered_unique(config.style_layers or source.default_style_layers)
    source.check_layers(content_layers, "content layer")
    source.check_layers(style_layers, "style layer")
    order = [n for n in source.layer_names if n in set(content_layers) | set(style_layers)]
    net = _build_net(source, order, devices, config, content_layers, style_layers)
    return _Network(config, source, net, devices, content_layers, style_layers, order)


def _targets(
    network: _Network, content_in: torch.Tensor, styles: Sequence[Image.Image]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, L.GaussianStats]]:
    """Content activations of ``content_in`` and blended style Grams of ``styles`` (sized like neural-style-pt).

    With ``style_loss="w2"`` the style targets are the blended covariances and the third dict holds the blended
    means and covariances (:func:`impasto.gatys.losses.blend_gaussians`); else it is empty.
    """
    config, net, device = network.config, network.net, network.device
    style_size = int(config.image_size * config.style_scale)
    blend = config.blend_weights(len(styles))
    with torch.no_grad(), _too_small_is_config_error(network.source.display, config):
        feats = net.features(content_in, network.content_layers)
        content_targets = {n: feats[n].detach() for n in network.content_layers}
        w2 = config.style_loss == "w2"
        grams: dict[str, list[torch.Tensor]] = {n: [] for n in network.style_layers}
        moments: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {n: [] for n in network.style_layers}
        for style in styles:
            style01 = resize_like_neural_style(style, neural_style_size(style.size, style_size))
            feats = net.features(preprocess(style01, network.source.preprocessing).to(device), network.style_layers)
            for n in network.style_layers:
                if w2:
                    moments[n].append(L.mean_cov(feats[n]))
                else:
                    grams[n].append(L.gram_matrix(feats[n]))
            del feats
        if w2:
            style_stats = {n: L.blend_gaussians(moments[n], blend) for n in network.style_layers}
            return content_targets, {n: s.cov for n, s in style_stats.items()}, style_stats
        style_targets = {n: L.blend_grams(grams[n], blend) for n in network.style_layers}
    return content_targets, style_targets, {}


def _layer_weights(
    config: PaintConfig, content_targets: dict[str, torch.Tensor], style_targets: dict[str, torch.Tensor]
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-layer loss weights: the config's, divided by the target's largest dimension with normalize_weights."""
    content_weights = {n: float(_w(config.content_weight)) for n in content_targets}
    style_weights = {n: float(_w(config.style_weight)) for n in style_targets}
    if config.normalize_weights:
        content_weights = {n: L.normalized_weight(w, content_targets[n].shape) for n, w in content_weights.items()}
        style_weights = {n: L.normalized_weight(w, style_targets[n].shape) for n, w in style_weights.items()}
    return content_weights, style_weights


def _initial_image(
    config: PaintConfig, content_in: torch.Tensor, init_image: Image.Image | None, size: tuple[int, int],
    contract: str, device: torch.device, resumed: bool = False,
) -> torch.Tensor:  # fmt: skip
    """The starting image (1, 3, H, W) in network space: seeded noise, the init image, or the content image.

    ``init="stylized"``: ``init_image`` is the fast network's stylisation of the content (Magenta's arbitrary
    network, made by ``impasto.api.paint``: gatys may not import fast), resized to ``size`` like any init image.
    ``resumed``: the checkpoint's image replaces the start (a resumed stylised run never makes its start).
    """
    if config.init == "stylized" and init_image is None and resumed:
        return content_in.clone()
    if config.init == "stylized" and init_image is None:
        raise ConfigError(
            "init=stylized starts from the fast network's stylised image, which impasto.api.paint makes; "
            "called directly, pass it as init_image"
        )
    if config.init == "random":
        gen = torch.Generator(device="cpu")
        if config.seed >= 0:
            gen.manual_seed(config.seed)
        else:
            gen.seed()
        _, c, h, w = content_in.shape
        # neural-style-pt: torch.randn(C, H, W).mul(0.001).unsqueeze(0), drawn on the CPU then moved.
        return torch.randn(c, h, w, generator=gen).mul(0.001).unsqueeze(0).to(device)
    if init_image is not None:
        return preprocess(resize_like_neural_style(init_image, size), contract).to(device)
    return content_in.clone()


def _memory_plan(network: _Network, content: Image.Image, styles: Sequence[Image.Image]) -> memory.Plan | None:
    """The memory plan of ``network.config``'s scale (:func:`impasto.gatys.memory.plan_paint`); ConfigError if none."""
    return memory.plan_paint(
        network.config, network.net, network.order, network.content_layers, content.size,
        [s.size for s in styles], network.device,
    )  # fmt: skip


def _problem(
    network: _Network, content: Image.Image, styles: Sequence[Image.Image], init_image: Image.Image | None,
    mplan: memory.Plan | None = None, resumed: bool = False,
) -> Problem:  # fmt: skip
    """Steps 1, 3 and 4 of the outline on an opened network: images, targets, weights, start (and the fast copy).

    ``mplan``: the memory plan (None: planned here); its tiles and checkpointing go into the Problem, its L-BFGS
    history into the config (``lbfgs_num_correction``, ``lbfgs_history_dtype``: what the optimiser reads).
    """
    if mplan is None:
        mplan = _memory_plan(network, content, styles)
    if mplan is not None:
        network = dataclasses.replace(network, config=memory.with_plan(network.config, mplan))
    config, device, contract = network.config, network.device, network.source.preprocessing
    size = neural_style_size(content.size, config.image_size)
    content01 = resize_like_neural_style(content, size)
    content_in = preprocess(content01, contract).to(device)
    if mplan is not None and mplan.tile:  # the targets tile by tile too: no untiled forward pass at print size
        style_size = int(config.image_size * config.style_scale)
        styles_in = [
            preprocess(resize_like_neural_style(s, neural_style_size(s.size, style_size)), contract).to(device)
            for s in styles
        ]
        with _too_small_is_config_error(network.source.display, config):
            content_targets, style_targets, style_stats = tiled.targets(
                network.net, config, content_in, network.content_layers, network.style_layers, styles_in, mplan.tile
            )
        del styles_in
    else:
        content_targets, style_targets, style_stats = _targets(network, content_in, styles)
    content_weights, style_weights = _layer_weights(config, content_targets, style_targets)
    init = _initial_image(config, content_in, init_image, size, contract, device, resumed)
    fast_net, fast_dtype = None, None
    if config.fast:
        if len(network.devices) > 1:
            raise ConfigError("the fast path (fast) runs on one device; give one device in gpu or drop fast")
        fast_net, fast_dtype = fastpath.fast_network(network.net, device)
    return Problem(
        config=config,
        net=network.net,
        contract=contract,
        model=network.source.display,
        device=device,
        content01=content01,
        init=init,
        content_targets=content_targets,
        style_targets=style_targets,
        content_weights=content_weights,
        style_weights=style_weights,
        order=network.order,
        fast_net=fast_net,
        fast_dtype=fast_dtype,
        style_stats=style_stats,
        tile_size=mplan.tile if mplan is not None else 0,
        checkpointing=mplan.checkpointing if mplan is not None else False,
        memory_plan=mplan,
    )


def prepare(
    content: Image.Image,
    styles: Sequence[Image.Image],
    config: PaintConfig,
    *,
    init_image: Image.Image | None = None,
    source: torch_formats.FeatureSource | None = None,
) -> Problem:
    """Open the network, size and preprocess the images, compute targets and the starting image."""
    return _problem(_open_network(config, source), content, styles, init_image)


# --- the loss -------------------------------------------------------------------------------------------------


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
    if _w(problem.config.tv_weight) > 0:
        labels.append("tv")
    return labels + ["total"]


def _fused(
    fn: type[torch.autograd.Function], f: torch.Tensor, target: torch.Tensor, weight: float, ng: bool
) -> torch.Tensor:
    if not ng:
        return fn.apply(f, target, weight)
    return L.scale_gradients(fn.apply(f, target, 1.0), weight) * weight


LayerLoss = Callable[[torch.Tensor, str], torch.Tensor]  # (activation, layer) -> 0-d loss on problem.device


def _exact_path(problem: Problem, img: torch.Tensor) -> tuple[Any, torch.Tensor, LayerLoss, LayerLoss]:
    """The fp32 network and :mod:`impasto.gatys.losses` (neural-style-pt's arithmetic)."""
    ng, dev = problem.config.normalize_gradients, problem.device

    def content(f: torch.Tensor, n: str) -> torch.Tensor:
        return L.content_loss(f, problem.content_targets[n], problem.content_weights[n], ng).to(dev)

    def style(f: torch.Tensor, n: str) -> torch.Tensor:
        if problem.style_stats:
            return L.w2_style_loss(f, problem.style_stats[n], problem.style_weights[n], ng).to(dev)
        return L.style_loss(L.gram_matrix(f), problem.style_targets[n], problem.style_weights[n], ng).to(dev)

    return problem.net, img, content, style


def _fast_path(problem: Problem, img: torch.Tensor) -> tuple[Any, torch.Tensor, LayerLoss, LayerLoss]:
    """The bf16/channels_last copy and the fused fp32 losses (see :mod:`impasto.gatys.fastpath`)."""
    ng = problem.config.normalize_gradients
    x = img.to(problem.fast_dtype)
    if img.device.type in ("cpu", "cuda"):
        x = x.contiguous(memory_format=torch.channels_last)  # (1, 3, H, W) NHWC in memory, like every activation

    def content(f: torch.Tensor, n: str) -> torch.Tensor:
        return _fused(fastpath.ContentLoss, f, problem.content_targets[n], problem.content_weights[n], ng)

    def style(f: torch.Tensor, n: str) -> torch.Tensor:
        if problem.style_stats:  # the W2 loss in fp32 from the bf16 activation (autograd casts the gradient back)
            return L.w2_style_loss(f, problem.style_stats[n], problem.style_weights[n], ng)
        return _fused(fastpath.StyleLoss, f, problem.style_targets[n], problem.style_weights[n], ng)

    return problem.fast_net, x, content, style


def _tap_losses(
    problem: Problem, net: fastpath.FusedTaps, x: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The content and Gram style terms on the fast CPU network as one node with a hand-written backward
    (:meth:`~impasto.gatys.fastpath.FusedTaps.tap_losses`): the same values as the layer-by-layer losses."""
    ng = problem.config.normalize_gradients
    specs = [("content", n, problem.content_targets[n], problem.content_weights[n]) for n in problem.content_targets]
    specs += [("style", n, problem.style_targets[n], problem.style_weights[n]) for n in problem.style_targets]
    values = net.tap_losses(x, [fastpath.TapLoss(k, n, t, 1.0 if ng else w) for k, n, t, w in specs])
    terms: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] = ({}, {})
    for (kind, n, _, w), v in zip(specs, values, strict=True):
        terms[kind == "style"][n] = L.scale_gradients(v, w) * w if ng else v
    return terms


def evaluate(problem: Problem, img: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The painting loss of ``img`` (network space, (1, 3, H, W)): the total as a 0-d tensor, and every term.

    total = sum over content layers of content_loss + sum over style layers of style_loss + tv_loss, each as
    :mod:`impasto.gatys.losses` defines it. The caller runs ``backward()``. The study (``impasto.study``) uses
    this same function, so every optimiser there sees exactly the loss ``impasto paint`` minimises. With
    ``problem.fast_net`` the same terms in the same order come from the fast path, as fp32 values.
    """
    # TV first: neural-style-pt's TV module sits before the network, and building the autograd graph in the
    # same order makes the backward pass accumulate the image gradient in the same order (bit-identical runs).
    if problem.tile_size > 0:  # the same loss, tile by tile (impasto.gatys.tiled); the gradient comes precomputed
        return tiled.evaluate_tiled(problem, img)
    tv_weight = _w(problem.config.tv_weight)
    tv = L.tv_loss(img, tv_weight) if tv_weight > 0 else None
    path = _fast_path if problem.fast_net is not None else _exact_path
    net, x, content_loss, style_loss = path(problem, img)
    content_terms: dict[str, torch.Tensor] = {}
    style_terms: dict[str, torch.Tensor] = {}
    # Each layer's losses are built as soon as its activation exists (content, then style), so the autograd
    # graph -- and the order gradients are summed in -- is that of neural-style-pt's net with loss modules.
    taps = net.iter_features if hasattr(net, "iter_features") else lambda x, n: net.features(x, n).items()
    if problem.checkpointing:  # segments between taps under torch.utils.checkpoint: same values, less memory
        taps = lambda x, n: tiled.iter_features(net, x, n, checkpointed=True)  # noqa: E731
    if isinstance(net, fastpath.FusedTaps) and not problem.style_stats and not problem.checkpointing:
        content_terms, style_terms = _tap_losses(problem, net, x)
    else:
        for n, f in taps(x, problem.order):
            if n in problem.content_targets:
                content_terms[n] = content_loss(f, n)
            if n in problem.style_targets:
                style_terms[n] = style_loss(f, n)
    terms = [content_terms[n] for n in problem.order if n in content_terms]
    terms += [style_terms[n] for n in problem.order if n in style_terms]
    if tv is not None:
        terms.append(tv)
    loss: Any = 0  # summed in neural-style-pt's order: content, style, TV
    for t in terms:
        loss = loss + t
    values = torch.stack([t.detach() for t in terms] + [loss.detach()]).tolist()  # one device sync
    return loss, dict(zip(loss_labels(problem), values, strict=True))


# --- the optimisation loop ------------------------------------------------------------------------------------

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
    taken: int = 0  # evaluations this paint() call has run (all scales): 0 means nothing new to keep on cancel
    info: dict[str, Any] = field(default_factory=dict)  # what runs where (PaintResult.info)
    carry: Any = None  # the previous scale's optimiser (its state is resampled to this scale: _carry_state)


class IterateAverage:
    """The bias-corrected exponential moving average of a sequence of images (``average``).

    After ``update(x_1) ... update(x_t)``: ``value() = sum_k (1 - d) d^(t-k) x_k / (1 - d^t)`` with ``d = decay``
    (style-transfer-pytorch's EMA), so the first value is ``x_1`` and old images fade by ``d`` per step. ``biased``
    (the uncorrected sum) and ``accum`` (``d^t``) are all its state: :meth:`state` / :meth:`load` round-trip it
    exactly through a checkpoint.
    """

    def __init__(self, decay: float) -> None:
        self.decay = float(decay)
        self.accum = 1.0  # decay^t
        self.biased: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        if self.biased is None:
            self.biased = torch.zeros_like(x)
        self.accum *= self.decay
        self.biased.mul_(self.decay).add_(x, alpha=1 - self.decay)

    def value(self) -> torch.Tensor:
        if self.biased is None:
            raise ValueError("IterateAverage has seen no image yet")
        return self.biased / (1 - self.accum)

    def state(self) -> dict[str, Any]:
        biased = None if self.biased is None else self.biased.detach().cpu().clone()
        return {"decay": self.decay, "accum": self.accum, "biased": biased}

    def load(self, state: dict[str, Any], like: torch.Tensor) -> None:
        self.decay, self.accum = float(state["decay"]), float(state["accum"])
        biased = state["biased"]
        self.biased = None if biased is None else biased.to(like.device, like.dtype).clone()


@dataclass
class _Loop:
    """The mutable state of one scale's loop (lives only inside :func:`_optimise`)."""

    step: int = 0  # evaluations done in this scale (resumed ones included)
    history: list[dict[str, float]] = field(default_factory=list)
    final_raw: torch.Tensor | None = None  # the image evaluated at the last step
    budget_spent: bool = False  # a line search wanted more evaluations than num_iterations allows
    average: IterateAverage | None = None  # config.average: the moving average of the evaluated images

    def shown(self, img: torch.Tensor) -> torch.Tensor:
        """What this scale has made so far: the average (``average``) or ``img`` itself."""
        if self.average is not None and self.average.biased is not None:
            return self.average.value()
        return img.detach()


class _BudgetSpent(Exception):
    """Raised by the closure when a line search asks for an evaluation beyond ``num_iterations``."""


def _make_optimizer(
    config: PaintConfig, img: torch.Tensor, stepwise: bool, multi: bool = False
) -> torch.optim.Optimizer:
    """L-BFGS as neural-style-pt configures it (one step() for the whole run unless ``stepwise``), or Adam.

    neural-style-pt runs all L-BFGS iterations inside one optimizer.step(); a checkpoint needs the optimiser's
    state between iterations, which L-BFGS only writes back when step() returns, so with checkpoints each step()
    runs one iteration (max_iter=1). Without a line search that is the same arithmetic in the same order
    (tests/test_gatys_extras.py checks it is bit-identical); the default path stays upstream's.

    The fast path, a bf16 history and multi-scale runs (``multi``: the history is carried between scales) use
    :class:`impasto.gatys.lbfgs.LBFGS` -- torch's iterates to rounding, a fraction of its cost per iteration.
    """
    iterations = config.num_iterations
    if config.optimizer != "lbfgs":
        return torch.optim.Adam([img], lr=config.learning_rate)
    if config.lbfgs_line_search == "none" and (config.fast or multi or config.lbfgs_history_dtype == "bfloat16"):
        # The fast path (or a bf16 history): torch.optim.LBFGS's iterates, its history in one ring buffer and the
        # direction in two BLAS calls instead of ~4 m small ones (impasto.gatys.lbfgs). The exact fp32 path keeps
        # torch's optimiser, so it stays bit-identical to neural-style-pt.
        return LBFGS(
            [img],
            max_iter=1 if stepwise else iterations,
            tolerance_change=-1,
            tolerance_grad=-1,
            history_size=config.lbfgs_num_correction,
            history_dtype=torch.bfloat16 if config.lbfgs_history_dtype == "bfloat16" else torch.float32,
        )
    return torch.optim.LBFGS(
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


# Multi-scale runs carry the optimiser's state to the next scale (False: every scale starts afresh): Adam's moments
# always; L-BFGS's history pairs only with CARRY_LBFGS_HISTORY, off because it measured worse than a restart (fast
# path, random full-size VGG-19, tubingen/starry night, scales 96,136,192, budget 60, the final image's exact loss:
# resampled history 2.45e5 (two runs, with and without rescaling gamma), restart 3.5e4 -- one machine, loaded).
CARRY_OPTIMIZER_STATE = True
CARRY_LBFGS_HISTORY = False


def _carry_state(previous: torch.optim.Optimizer, optimizer: torch.optim.Optimizer, img: torch.Tensor) -> None:
    """Resample the previous scale's optimiser state to this scale's image ``img`` (1, 3, H, W), in place.

    Steps, directions and Adam's first moment are resized like the image (bicubic in network space: the
    preprocessing is affine, so a difference of images resizes the same way); gradient-like vectors (L-BFGS's
    ``y``, Adam's moments) are also multiplied by the area ratio ``h w / (H W)`` -- the painting losses are means
    over positions, so each pixel's share of the gradient shrinks as the pixels multiply -- which keeps ``s.y``,
    the curvature L-BFGS measures and Adam's step sizes as they were. Adam's second moment is resized bilinearly
    (never negative). torch.optim.LBFGS (with a line search) starts afresh, and so does impasto's L-BFGS unless
    ``CARRY_LBFGS_HISTORY`` (measured worse than a restart, see there).
    """
    if not CARRY_OPTIMIZER_STATE or type(previous) is not type(optimizer):
        return
    old_param = previous.param_groups[0]["params"][0]
    hw = tuple(old_param.shape[-2:])
    gain = (hw[0] * hw[1]) / (img.shape[-2] * img.shape[-1])

    def resize(v: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
        """Any tensor of the old image's size -> (1, 3, H, W) like ``img``."""
        grid = v.reshape(1, -1, *hw).float()  # (1, 3, h, w)
        up = torch.nn.functional.interpolate(grid, size=img.shape[-2:], mode=mode, align_corners=False)
        return up.to(img.dtype).reshape(img.shape)

    if isinstance(previous, LBFGS) and isinstance(optimizer, LBFGS):
        if not CARRY_LBFGS_HISTORY:
            return  # a fresh L-BFGS at each scale (see CARRY_LBFGS_HISTORY)
        same = ("history_size", "lr")
        if any(previous.param_groups[0][k] != optimizer.param_groups[0][k] for k in same):
            return  # a scale whose memory plan chose another history: start afresh
        if previous.history_dtype != optimizer.history_dtype:
            return
        previous.resample(lambda v: resize(v).reshape(-1), img, gain)  # previous now holds img's state
        optimizer.state[img] = previous.state.pop(img)
        return
    if isinstance(previous, torch.optim.Adam):
        state = previous.state.get(old_param)
        if not state:
            return
        optimizer.state[img] = {
            "step": state["step"].clone(),
            "exp_avg": resize(state["exp_avg"]).mul_(gain),
            "exp_avg_sq": resize(state["exp_avg_sq"], "bilinear").clamp_(min=0).mul_(gain * gain),
        }


def _restore(snapshot: dict[str, Any], loop: _Loop, img: torch.Tensor, optimizer: torch.optim.Optimizer,
             iterations: int) -> None:  # fmt: skip
    """Put a checkpoint's image, optimiser state, step and history back before the first step."""
    with torch.no_grad():
        img.copy_(snapshot["image"].to(img.device, img.dtype))
    optimizer.load_state_dict(snapshot["optimizer"])
    loop.step = int(snapshot["step"])
    loop.history = [dict(h) for h in snapshot["history"]]
    if loop.average is not None:
        loop.average.load(snapshot["average"], img)
    if loop.step >= iterations:
        loop.final_raw = snapshot["evaluated"].to(img.device)


def _snapshot(run: _Scale, loop: _Loop, img: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A checkpoint of this scale after ``loop.step`` evaluations (plain tensors and dicts, on the CPU)."""
    # ``evaluated``: this scale's result once its last step is done (img has moved on by one update then).
    evaluated = loop.final_raw if loop.final_raw is not None else img.detach()
    return {
        "format": checkpoint.FORMAT,
        "fingerprint": run.fingerprint,
        "settings": run.settings,
        "scale_index": run.index,
        "step": loop.step,
        "image": img.detach().cpu().clone(),
        "evaluated": evaluated.cpu().clone(),
        # A deep copy: state_dict() shares the live tensors L-BFGS keeps updating in place.
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "history": [dict(h) for h in loop.history],
        **({"average": loop.average.state()} if loop.average is not None else {}),
    }


def _closure(
    problem: Problem, img: torch.Tensor, optimizer: torch.optim.Optimizer, loop: _Loop, run: _Scale,
    callback: Callback | None, cancel: CancelToken | None, clock: Stopwatch,
) -> Callable[[], torch.Tensor]:  # fmt: skip
    """One step: check the cancel token and the budget, evaluate, backward, report Progress (and Preview)."""
    config = problem.config
    iterations = config.num_iterations
    total_steps = run.total or iterations
    # Fast path + L-BFGS: the first steps are exact fp32 (see FAST_LBFGS_EXACT_STEPS) -- at the first scale only
    # when the history is carried between scales: a later scale starts with a curvature estimate and full-size steps.
    carried = run.index > 0 and CARRY_OPTIMIZER_STATE and CARRY_LBFGS_HISTORY and isinstance(optimizer, LBFGS)
    fast_lbfgs = problem.fast_net is not None and config.optimizer == "lbfgs"
    exact_steps = FAST_LBFGS_EXACT_STEPS if (fast_lbfgs and not carried) else 0
    exact = dataclasses.replace(problem, fast_net=None, fast_dtype=None) if exact_steps else problem

    def closure() -> torch.Tensor:
        if cancel is not None and cancel.cancelled:
            partial = _to_image(loop.shown(img), problem, config) if run.taken else None
            raise Cancelled("cancelled", partial=partial)
        if loop.step >= iterations:
            raise _BudgetSpent
        loop.step += 1
        run.taken += 1
        optimizer.zero_grad()
        loss, record = evaluate(exact if loop.step <= exact_steps else problem, img)
        loss.backward()
        if loop.average is not None:
            loop.average.update(img.detach())
        loop.history.append(record)
        if loop.step == iterations:
            loop.final_raw = img.detach().clone()
        t = run.offset + loop.step  # counted across all scales
        info: dict[str, Any] = {"print": config.print_iter > 0 and t % config.print_iter == 0}
        if run.multi:
            info.update(scale=max(problem.content01.shape[-2:]), scale_index=run.index)
        emit(callback, Progress(t, total_steps, record, clock(), info=info))
        if t in run.preview_at:
            picture = _to_image(loop.shown(img), problem, config)[0]  # (3, H, W) in [0, 1]
            emit(callback, Preview(t, tensor_to_pil(picture), raw=picture))
        return loss

    return closure


def _run_steps(config: PaintConfig, run: _Scale, loop: _Loop, img: torch.Tensor, optimizer: torch.optim.Optimizer,
               closure: Callable[[], torch.Tensor]) -> None:  # fmt: skip
    """Call ``optimizer.step`` until ``num_iterations`` evaluations are done, checkpointing on the way."""
    iterations = config.num_iterations
    stepwise = run.checkpointer is not None
    every = config.checkpoint_every if stepwise else 0
    line_search = config.optimizer == "lbfgs" and config.lbfgs_line_search != "none"
    saved_at = loop.step
    # One step() runs all iterations on the default L-BFGS path (as upstream), one iteration stepwise, one
    # evaluation with Adam; "step < iterations" stops each at exactly num_iterations evaluations.
    while loop.step < iterations:
        if stepwise and line_search:
            # One iteration per step() leaves the line search torch's default budget of evaluations
            # (max_eval = 5/4 max_iter would give it none), within what is left of the run's evaluations.
            optimizer.param_groups[0]["max_eval"] = 1 + max(1, min(25, iterations - loop.step))
        try:
            optimizer.step(closure)  # type: ignore[arg-type]  # torch's stub wants a float closure
        except _BudgetSpent:
            loop.budget_spent = True
        if line_search and loop.step >= iterations and not loop.budget_spent:
            # with a line search the accepted point need not be the last evaluated; when the budget ran out
            # inside a line search, the result is the image evaluated last (the last loss reported)
            loop.final_raw = img.detach().clone()
        # ">=": with a line search one step() may run several evaluations and jump past a multiple of ``every``.
        if stepwise and ((every and loop.step - saved_at >= every) or loop.step >= iterations):
            run.checkpointer.save(_snapshot(run, loop, img, optimizer))
            saved_at = loop.step
        if loop.budget_spent:
            break


def _optimise(
    problem: Problem,
    callback: Callback | None,
    cancel: CancelToken | None,
    clock: Stopwatch,
    scale: _Scale | None = None,
) -> PaintResult:
    """Step 5 of the outline for one scale: optimise ``problem.init`` and return the result."""
    config = problem.config
    run = scale or _Scale(total=config.num_iterations, preview_at=frozenset(save_steps(config)))
    img = problem.init.detach().clone().requires_grad_(True)
    optimizer = _make_optimizer(config, img, stepwise=run.checkpointer is not None, multi=run.multi)
    loop = _Loop(history=list(run.history), average=IterateAverage(config.average_decay) if config.average else None)
    if run.resume is not None:
        _restore(run.resume, loop, img, optimizer, config.num_iterations)
    elif run.carry is not None:
        _carry_state(run.carry, optimizer, img)
    closure = _closure(problem, img, optimizer, loop, run, callback, cancel, clock)
    _run_steps(config, run, loop, img, optimizer, closure)
    run.carry = optimizer
    if loop.average is not None and loop.average.biased is not None:
        raw = loop.average.value().cpu()  # the average of this scale's iterates is its result
    else:
        raw = (loop.final_raw if loop.final_raw is not None else img.detach()).cpu()
    return PaintResult(
        image=_to_image(raw, problem, config),
        raw=raw,
        content=problem.content01,
        losses=loop.history,
        steps=run.offset + loop.step,
        model=problem.model,
        preprocessing=problem.contract,
        elapsed=clock(),
        config=config,
        info=dict(run.info, size=tuple(raw.shape[-2:])),
    )


# --- the whole run: scales, checkpoints, events ---------------------------------------------------------------


def _upsampled_init(previous: PaintResult, problem: Problem) -> torch.Tensor:
    """The previous scale's result (before original colours) resized to this scale, in network space."""
    prev01 = deprocess(previous.raw, previous.preprocessing)  # (1, 3, h, w) in [0, 1]
    h, w = problem.content01.shape[-2:]
    up = torch.nn.functional.interpolate(prev01, size=(h, w), mode="bicubic", align_corners=False).clamp_(0, 1)
    return preprocess(up, problem.contract).to(problem.device)


def _checkpointing(
    config: PaintConfig, run: _Scale, checkpointer: checkpoint.Checkpointer | None, content: Image.Image,
    styles: Sequence[Image.Image], init_image: Image.Image | Callable[[], Image.Image] | None,
) -> dict[str, Any] | None:  # fmt: skip
    """Attach the checkpointer to ``run`` (when checkpointing) and return the snapshot to resume from, if any."""
    if not (config.checkpoint_every or config.resume):
        return None
    if checkpointer is None:
        if not config.checkpoint_path:
            raise ConfigError("checkpoint_every/resume need a checkpoint_path (where the checkpoint file goes)")
        checkpointer = checkpoint.FileCheckpointer(config.checkpoint_path)
    run.checkpointer = checkpointer
    # the stylised start is made from the content, styles and settings already in the fingerprint (its pixels vary
    # with the device's precision, and a resumed run never makes it)
    start = None if config.init == "stylized" or callable(init_image) else init_image
    run.fingerprint = checkpoint.fingerprint(config, content, styles, start)
    run.settings = checkpoint.settings(config)
    if not config.resume:
        return None
    snapshot = checkpointer.load()
    if snapshot is not None:
        checkpoint.check_resumable(snapshot, run.fingerprint, config, config.checkpoint_path or "given")
    return snapshot


def _with_choices(config: PaintConfig, source: torch_formats.FeatureSource | None) -> PaintConfig:
    """``config`` with ``init`` and ``style_loss`` resolved against the network's recommendations (the network is
    opened only when one of them is left to it and no ``source`` is given)."""
    if config.init is not None and config.style_loss is not None:
        return config
    if source is None:
        source = torch_formats.open_feature_source(config.model, config.model_file, disable_check=config.disable_check)
    return config.resolve_choices(source.recommended)


def resume_point(
    content: Image.Image,
    styles: Sequence[Image.Image],
    config: PaintConfig,
    *,
    init_image: Image.Image | None = None,
    checkpointer: checkpoint.Checkpointer | None = None,
) -> int | None:
    """The step (counted over all scales) a ``resume`` run of these inputs would continue from, before any work.

    None when there is no checkpoint yet (the run starts from the beginning); ConfigError when the checkpoint was
    made with other settings or inputs, or cannot be read.
    """
    config = config.validate(num_styles=len(styles))
    if not config.resume:
        return None
    config = _with_choices(config, None)
    snapshot = _checkpointing(config, _Scale(), checkpointer, content, styles, init_image)
    if snapshot is None:
        return None
    done_before = sum(n for _, n in scale_plan(config)[: int(snapshot["scale_index"])])
    return done_before + int(snapshot["step"])


def _started(network: _Network, content: Image.Image, run: _Scale, plan: list[tuple[int, int]], total: int,
             snapshot: dict[str, Any] | None) -> Started:  # fmt: skip
    """The Started event (and ``run.info``): which network, where, at what size, which layers."""
    w, h = neural_style_size(content.size, network.config.image_size)
    run.info = {
        "model": network.source.display,
        "device": str(network.device),
        "preprocessing": network.source.preprocessing,
        "layers": list(network.order),
    }
    return Started(
        total=total,
        info={
            **run.info,
            "size": (h, w),
            **({"scales": [s for s, _ in plan]} if run.multi else {}),
            **({"resumed_at": run.offset + int(snapshot["step"])} if snapshot is not None else {}),
        },
    )


def _check_cancel(cancel: CancelToken | None, previous: PaintResult | None) -> None:
    """Cancelled between the pieces of a run; the partial is what an earlier scale finished (None: nothing)."""
    if cancel is not None and cancel.cancelled:
        raise Cancelled("cancelled", partial=previous.image if previous is not None else None)


def paint(
    content: Image.Image,
    styles: Sequence[Image.Image],
    config: PaintConfig | None = None,
    *,
    init_image: Image.Image | Callable[[], Image.Image] | None = None,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    source: torch_formats.FeatureSource | None = None,
    checkpointer: checkpoint.Checkpointer | None = None,
) -> PaintResult:
    """Paint ``content`` (a PIL RGB image) in the style of ``styles`` by optimisation; see the module docstring.

    ``init_image`` is used when ``config.init`` is "image" or "stylized" (else the content image); for "stylized"
    it may be a function that makes it, called only when a run starts from it (not when it resumes from a
    checkpoint); ``source`` an already opened feature network (to paint many images without re-reading the file).

    Extras (all off by default): ``config.fast`` (:mod:`impasto.gatys.fastpath`); ``config.scales``: paint at each
    size in turn, each scale re-running :func:`prepare` at its size (targets recomputed, styles at
    ``size * style_scale``) and starting from the previous result upsampled (bicubic in [0, 1]), with the
    optimiser's state carried over (:func:`_carry_state`: L-BFGS's history pairs or Adam's moments resampled);
    ``num_iterations`` is one budget split over the scales (:func:`split_budget`, unless ``scale_iterations``);
    Progress steps count across all scales, ``info`` carries ``scale`` (longest side) and ``scale_index``, and
    Previews come at the final scale only unless ``save_all_scales``;
    ``config.checkpoint_every``/``resume``: snapshots go to ``checkpointer`` (default: a
    :class:`~impasto.gatys.checkpoint.FileCheckpointer` at ``config.checkpoint_path``) and a resumed run continues
    from the last one -- refused with a ConfigError when the settings or input images differ.
    """
    config = (config or PaintConfig()).validate(num_styles=len(styles))
    if source is None:  # opened once for all scales
        source = torch_formats.open_feature_source(config.model, config.model_file, disable_check=config.disable_check)
    config = _with_choices(config, source)  # before the checkpoint's settings are taken
    scales = scale_plan(config)
    total = sum(n for _, n in scales)
    run = _Scale(total=total, multi=len(scales) > 1, preview_at=frozenset(save_steps(config)))
    snapshot = _checkpointing(config, run, checkpointer, content, styles, init_image)
    if callable(init_image):  # the stylised start: made only when the run starts from it
        init_image = None if snapshot is not None else init_image()
    start_at = int(snapshot["scale_index"]) if snapshot is not None else 0
    clock = Stopwatch()
    result: PaintResult | None = None
    if any(d.type == "cpu" for d in parse_devices(config.gpu)):
        keep_freed_memory()  # every step's activations reuse the last step's blocks, not fresh page-faulted ones
    with _cudnn_autotune(config, parse_devices(config.gpu)):
        for index, (size, iterations) in enumerate(scales):
            if index < start_at:
                run.offset += iterations
                continue
            _check_cancel(cancel, result)
            scale_config = config.replace(image_size=size, num_iterations=iterations) if run.multi else config
            network = _open_network(scale_config, source)
            mplan = _memory_plan(network, content, styles)  # before any work: a run that cannot fit is refused
            if result is None:  # the first scale run (or resumed)
                shown = mplan
                if run.multi:  # the last (largest) scale must fit too; its plan is the one the line shows
                    last = dataclasses.replace(network, config=network.config.replace(image_size=scales[-1][0]))
                    shown = _memory_plan(last, content, styles)
                started = _started(network, content, run, scales, total, snapshot)
                if shown is not None:
                    line = shown.line(scales=len(scales))
                    started = dataclasses.replace(started, info={**started.info, "memory_plan": line})
                emit(callback, started)
            problem = _problem(network, content, styles, init_image, mplan, resumed=snapshot is not None)
            if result is not None:
                problem.init = _upsampled_init(result, problem)
            _check_cancel(cancel, result)
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
