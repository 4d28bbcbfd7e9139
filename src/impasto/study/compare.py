"""Run several optimisers on one style-transfer loss from one starting image, recording everything.

The loss comes from the Gatys engine (``impasto.gatys``) through an :class:`Objective`; this module only
drives optimisers. Learning rates are in 0–255 pixel units, as in the original study: the image being
optimised is kept in those units whatever range the network takes (the objective converts), so a rate
means the same thing for every network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import torch

from ..errors import Cancelled, ConfigError
from ..events import Callback, CancelToken, Finished, Progress, Started, Stopwatch, emit
from .records import FINISHED, NOT_RUN, OPTIMIZERS, STOPPED, Record, Run, StudyResult, divergence

# called after each optimiser finishes with that run and the study so far (finished runs only), e.g. to save it
RunHook = Callable[[Run, StudyResult], None]


class Objective(Protocol):
    """A style-transfer loss over an image in 0–255 pixel units, (1, 3, H, W)."""

    network: str

    def initial(self) -> torch.Tensor:
        """The shared starting image (same seed for every optimiser), 0–255 units."""
        ...

    def __call__(self, x: torch.Tensor, /) -> tuple[torch.Tensor, dict[str, float]]:
        """(total loss as a 0-d tensor with grad, {term: value})."""
        ...

    def to_image(self, x: torch.Tensor, /) -> torch.Tensor:
        """0–255 units -> (1, 3, H, W) RGB in [0, 1] for display."""
        ...


def base_name(entry: str) -> str:
    """``"adam@1"`` -> ``"adam"``: an entry may pin its own rate, so one optimiser can run at several rates."""
    return entry.split("@", 1)[0]


@dataclass(frozen=True)
class StudyConfig:
    """``lr`` maps an optimiser to its learning rate (0–255 pixel units); missing ones use ``default_lr``.

    An entry of ``optimizers`` may be ``name@rate`` (e.g. ``adam@1`` and ``adam@10`` side by side).
    """

    optimizers: tuple[str, ...] = OPTIMIZERS
    default_lr: float = 10.0
    lr: Mapping[str, float] = field(default_factory=dict)
    iterations: int = 100
    lbfgs_history: int = 100  # neural-style-pt's lbfgs_num_correction default

    def validate(self) -> None:
        unknown = [o for o in self.optimizers if base_name(o) not in OPTIMIZERS]
        for entry in self.optimizers:
            if "@" in entry:
                try:
                    float(entry.split("@", 1)[1])
                except ValueError:
                    raise ConfigError(f"bad optimiser entry {entry!r}; use NAME or NAME@RATE, e.g. adam@1") from None
        if len(set(self.optimizers)) != len(self.optimizers):
            raise ConfigError(f"optimiser list {', '.join(self.optimizers)} names one entry twice")
        if unknown:
            raise ConfigError(f"unknown optimiser(s) {', '.join(unknown)}; choose from {', '.join(OPTIMIZERS)}")
        if not self.optimizers:
            raise ConfigError("no optimisers chosen")
        for name, value in {**self.lr, "default": self.default_lr}.items():
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"learning rate for {name} must be a positive number, got {value}")
        bad_lr = [o for o in self.lr if o not in OPTIMIZERS]
        if bad_lr:
            raise ConfigError(f"learning rate given for unknown optimiser(s) {', '.join(bad_lr)}")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be at least 1, got {self.iterations}")

    def rate(self, name: str) -> float:
        """The rate for ``name``. L-BFGS takes 1 unless set explicitly: like neural-style-pt, whose
        -learning_rate applies to Adam only, a global rate does not rescale L-BFGS's (already curvature-scaled) step."""
        if "@" in name:
            return float(name.split("@", 1)[1])
        if name in self.lr:
            return float(self.lr[name])
        return 1.0 if name == "lbfgs" else float(self.default_lr)


def make_optimizer(
    name: str,
    params: Sequence[torch.Tensor],
    lr: float,
    lbfgs_history: int,
    line_search: str | None = None,
    lbfgs_iterations: int = 1,
) -> torch.optim.Optimizer:
    """Plain textbook settings, as the original study used (no momentum for GD). L-BFGS runs as ``impasto paint``
    would on the same network: no line search for VGG/NIN (neural-style-pt), strong Wolfe where the network
    recommends it."""
    factories: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "gd": lambda: torch.optim.SGD(params, lr=lr),
        "adadelta": lambda: torch.optim.Adadelta(params, lr=lr),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr),
        "adam": lambda: torch.optim.Adam(params, lr=lr),
        "adagrad": lambda: torch.optim.Adagrad(params, lr=lr),
        # neural-style-pt's settings: all iterations in one step(), no tolerance stops
        "lbfgs": lambda: torch.optim.LBFGS(
            params,
            lr=lr,
            max_iter=lbfgs_iterations,
            history_size=lbfgs_history,
            tolerance_grad=-1,
            tolerance_change=-1,
            line_search_fn=None if line_search in (None, "none") else line_search,
            max_eval=None if line_search in (None, "none") else lbfgs_iterations,  # as impasto paint caps it
        ),
    }
    return factories[base_name(name)]()


def _zero_subnormals(x: torch.Tensor, state: Mapping[str, object]) -> None:
    """Set subnormal values of the iterate and of the optimiser's per-pixel state to 0, in place.

    Squared tiny gradients (Adam's, RMSProp's, Adagrad's, Adadelta's running averages) go subnormal, and
    arithmetic on subnormals is many times slower on x86. Flushing them here, on these image-sized tensors only,
    keeps that cost out without the process-wide ``torch.set_flush_denormal`` switch (which would change every
    other computation in the process, including other threads' jobs). A value under ``finfo.tiny`` (1.2e-38 in
    float32) is nothing next to pixels in 0-255 units, so the numbers are unchanged in any digit that shows.
    """
    with torch.no_grad():
        for t in (x, *(v for v in state.values() if isinstance(v, torch.Tensor) and v.shape == x.shape)):
            if t.is_floating_point():
                t.masked_fill_(t.abs() < torch.finfo(t.dtype).tiny, 0.0)


class _Stop(Exception):
    """Raised inside the closure to end a run (divergence); caught in run_one."""


def run_one(
    name: str,
    objective: Objective,
    config: StudyConfig,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
) -> Run:
    """One optimiser from the shared starting image; stops early (marked diverged) on NaN/inf or 100x growth.

    Records are per iteration, the loss being the one evaluated at that iteration's point. L-BFGS runs as one
    ``step()`` of ``iterations`` iterations, exactly as ``impasto paint`` and neural-style-pt run it; with a line
    search an iteration takes several evaluations, and its record holds the lowest of them, the point strong
    Wolfe accepts (``func_evals`` counts all).
    """
    lr = config.rate(name)
    lbfgs = base_name(name) == "lbfgs"
    x = objective.initial().clone().requires_grad_(True)
    line_search = getattr(objective, "line_search", None)
    opt = make_optimizer(name, [x], lr, config.lbfgs_history, line_search, config.iterations if lbfgs else 1)
    run = Run(optimizer=name, lr=lr)
    watch = Stopwatch()
    evals = 0
    best = math.inf
    by_iteration: dict[int, Record] = {}
    line_searching = lbfgs and line_search not in (None, "none")
    emit(callback, Started(total=config.iterations, info={"optimizer": name, "lr": lr}))

    def closure() -> torch.Tensor:
        nonlocal evals
        if cancel is not None and cancel.cancelled:
            run.records = [by_iteration[k] for k in sorted(by_iteration)]
            run.image = objective.to_image(x.detach())
            raise Cancelled("cancelled", partial=run)
        opt.zero_grad(set_to_none=True)
        loss, terms = objective(x)
        loss.backward()
        evals += 1
        total = float(loss.detach())
        # iteration k's point is the one after k-1 updates (L-BFGS keeps its own count; the others one per call)
        it = opt.state[x].get("n_iter", 0) + 1 if lbfgs else len(by_iteration) + 1
        new = it not in by_iteration
        if new and it - 1 in by_iteration:
            # the previous iteration is over: judge its accepted point (a line search's trial points may
            # legitimately overshoot, so they are never taken for divergence)
            judge(by_iteration[it - 1].total)
        record = Record(name, it, total, dict(terms), watch(), evals)
        if not new and line_searching and by_iteration[it].total <= total:
            # strong Wolfe accepts the lowest point it evaluated in an iteration: keep that loss, count the evals
            record = Record(name, it, by_iteration[it].total, by_iteration[it].terms, watch(), evals)
        by_iteration[it] = record
        if new:
            emit(
                callback,
                Progress(
                    step=it,
                    total=config.iterations,
                    losses={"total": total, **terms},
                    elapsed=watch(),
                    info={"optimizer": name, "func_evals": evals},
                ),
            )
        if not line_searching:
            judge(total)
        return loss

    def judge(total: float) -> None:
        nonlocal best
        reason = divergence(total, best) or ("" if torch.isfinite(x).all() else "image became non-finite")
        if reason:
            run.diverged, run.reason = True, reason
            raise _Stop
        best = min(best, total)

    try:
        if lbfgs:
            opt.step(closure)  # type: ignore[arg-type]  # LBFGS takes a closure returning the loss tensor
            if line_searching and by_iteration:
                judge(by_iteration[max(by_iteration)].total)
        else:
            for _ in range(config.iterations):
                closure()
                opt.step()
                _zero_subnormals(x, opt.state[x])
    except _Stop:
        pass
    run.records = [by_iteration[k] for k in sorted(by_iteration)]
    with torch.no_grad():
        finite = torch.nan_to_num(x.detach(), nan=0.0, posinf=255.0, neginf=0.0)
    run.image = objective.to_image(finite)
    return run


def compare(
    objective: Objective,
    config: StudyConfig,
    *,
    size: tuple[int, int],
    seed: int,
    callback: Callback | None = None,
    cancel: CancelToken | None = None,
    done: Mapping[str, Run] | None = None,
    on_run: RunHook | None = None,
    fingerprint: Mapping[str, object] | None = None,
    score: Callable[[Run], dict | None] | None = None,
) -> StudyResult:
    """Every optimiser in ``config`` on ``objective``, in order; Finished carries the StudyResult.

    ``score(run)``: the quality scores of a finished run's final image, stored in ``run.scores`` before
    ``on_run`` sees it.

    ``done``: runs already finished (a resumed study): they are kept as they are, not run again. ``on_run`` is
    called after each optimiser finishes with its Run and the study so far (every finished run). On ``cancel``
    the optimiser running stops at its next evaluation and ``Cancelled(partial=StudyResult)`` is raised: the
    partial result holds every finished run (status ``"finished"``), the stopped one's iterations so far
    (``"stopped"``) and the rest (``"not run"``); its ``complete`` is False.
    """
    config.validate()
    watch = Stopwatch()
    done = dict(done or {})
    runs: dict[str, Run] = {}

    def so_far(stopped: Run | None = None) -> StudyResult:
        out: list[Run] = []
        for name in config.optimizers:
            if name in runs:
                out.append(runs[name])
            elif stopped is not None and stopped.optimizer == name:
                out.append(stopped)
            else:
                out.append(Run(optimizer=name, lr=config.rate(name), status=NOT_RUN))
        return StudyResult(
            runs=out, network=objective.network, size=size, seed=seed, iterations=config.iterations,
            elapsed=watch(), fingerprint=dict(fingerprint or {}),
        )  # fmt: skip

    for name in config.optimizers:
        if name in done:
            runs[name] = done[name]
            continue
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled", partial=so_far())
        try:
            run = run_one(name, objective, config, callback, cancel)
        except Cancelled as exc:
            stopped = exc.partial if isinstance(exc.partial, Run) else None
            if stopped is not None:
                stopped.status = STOPPED
            raise Cancelled("cancelled", partial=so_far(stopped)) from None
        run.status = FINISHED
        if score is not None and run.image is not None:
            run.scores = score(run)
        runs[name] = run
        if on_run is not None:
            on_run(run, StudyResult(
                runs=[runs[n] for n in config.optimizers if n in runs], network=objective.network, size=size,
                seed=seed, iterations=config.iterations, elapsed=watch(), fingerprint=dict(fingerprint or {}),
            ))  # fmt: skip
    result = so_far()
    emit(callback, Finished(result=result, elapsed=result.elapsed))
    return result


def gather(
    results: Iterable[tuple[str, Run]],
    config: StudyConfig,
    *,
    network: str,
    size: tuple[int, int],
    seed: int,
    done: Mapping[str, Run] | None = None,
    on_run: RunHook | None = None,
    fingerprint: Mapping[str, object] | None = None,
) -> StudyResult:
    """A study from runs that finished elsewhere (one worker task per optimiser), in any order: ``results``
    yields ``(entry, run)`` as each finishes; ``on_run`` is called for each as in :func:`compare`. Cancelled
    (raised by ``results``) becomes ``Cancelled(partial=StudyResult)`` with the finished runs and the rest not run.
    """
    watch = Stopwatch()
    runs: dict[str, Run] = dict(done or {})

    def so_far(only_finished: bool = False) -> StudyResult:
        out = [
            runs[n] if n in runs else Run(optimizer=n, lr=config.rate(n), status=NOT_RUN)
            for n in config.optimizers
            if n in runs or not only_finished
        ]
        return StudyResult(
            runs=out, network=network, size=size, seed=seed, iterations=config.iterations, elapsed=watch(),
            fingerprint=dict(fingerprint or {}),
        )  # fmt: skip

    try:
        for name, run in results:
            if name in runs:  # a task retried after its worker died reports once
                continue
            run.status = FINISHED
            runs[name] = run
            if on_run is not None:
                on_run(run, so_far(only_finished=True))
    except Cancelled:
        raise Cancelled("cancelled", partial=so_far()) from None
    return so_far()


def run_optimizer(
    *,
    content: str,
    style: str,
    paint: Mapping[str, object],
    study: Mapping[str, object],
    optimizer: str,
    score: bool = True,
) -> dict:
    """Task function (``"impasto.study.compare:run_optimizer"``): one optimiser of a study in a worker.

    ``paint``: the study's PaintConfig as a plain dict; ``study``: StudyConfig fields. Builds the same loss and
    starting image as :func:`impasto.api.compare_optimizers` in one process (so the numbers are the same), runs
    ``optimizer`` and returns the Run as :func:`impasto.study.report.run_to_dict` data, scores included.
    """
    from ..gatys.config import PaintConfig
    from ..gatys.optimize import prepare
    from ..imaging import load_image
    from .objective import GatysObjective
    from .report import run_to_dict
    from .scoring import feature_source, score_picture, source_key

    try:
        from ..workers import worker_cancel, worker_device, worker_models
    except ImportError:  # pragma: no cover - an older workers package
        worker_models = None  # type: ignore[assignment]
    models = worker_models() if worker_models is not None else None
    cancel = worker_cancel() if worker_models is not None else None
    cfg = PaintConfig(**dict[str, Any](paint))
    if cfg.init is None:  # the study starts from seeded noise (see impasto.api.compare_optimizers)
        cfg = cfg.replace(init="random")
    if worker_models is not None and worker_device(cfg.gpu) != cfg.gpu:
        cfg = cfg.replace(gpu=worker_device(cfg.gpu))
    content_image, style_image = load_image(content), load_image(style)
    source = feature_source(cfg.model, cfg.model_file, disable_check=cfg.disable_check, models=models)
    problem = prepare(content_image, [style_image], cfg, source=source)
    study_config = StudyConfig(**{k: (dict(cast(Mapping[str, Any], v)) if k == "lr" else v) for k, v in study.items()})  # type: ignore[arg-type]
    with torch.enable_grad():
        run = run_one(optimizer, GatysObjective(problem), study_config, None, cancel)
    run.status = FINISHED
    if score and run.image is not None:
        from ..media import tensor_to_pil

        run.scores = score_picture(
            tensor_to_pil(run.image), content_image, [style_image], source=source, name=source.display,
            key=source_key(cfg.model, cfg.model_file, cfg.disable_check), device=problem.device, models=models,
        )  # fmt: skip
    return run_to_dict(run)
