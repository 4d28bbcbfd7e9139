"""Turn a StudyResult into tables, plots and a labelled grid, in memory (the CLI writes them atomically).

Plots are drawn on a ``matplotlib.figure.Figure`` with the Agg canvas directly: no pyplot, no backend switch, so
the process's matplotlib state (its backend, pyplot's figure list) is left as it was.

``records.json`` holds every finished run with its per-iteration records and final image, plus the study's
fingerprint: it is rewritten as each optimiser finishes, so a stopped or killed study resumes from it.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from typing import Any

from PIL import Image, ImageDraw

from ..errors import ConfigError
from .records import FINISHED, STOPPED, Record, Run, SavedRecords, StudyResult, label

RECORDS_FORMAT = 1
# the files of one study, in the order they are written (records.json last: it is also written as runs finish)
OUTPUT_FILES = ("losses.csv", "summary.json", "loss_vs_iteration.png", "loss_vs_time.png", "results.png")
RECORDS_FILE = "records.json"
INCOMPLETE = "INCOMPLETE: stopped before every optimiser finished"

TERM_ORDER = ("content", "style", "tv")


def term_names(result: StudyResult) -> list[str]:
    names: list[str] = []
    for run in result.runs:
        for rec in run.records:
            for k in rec.terms:
                if k not in names:
                    names.append(k)
    return sorted(names, key=lambda k: (TERM_ORDER.index(k) if k in TERM_ORDER else len(TERM_ORDER), k))


def losses_csv(result: StudyResult) -> str:
    """One row per optimiser and iteration: optimizer, lr, iteration, total, <terms>, wall_s, func_evals, diverged,
    status (``finished``, or ``stopped`` for the run a Ctrl-C ended part way)."""
    terms = term_names(result)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["optimizer", "lr", "iteration", "total", *terms, "wall_s", "func_evals", "diverged", "status"])
    for run in result.runs:
        for rec in run.records:
            writer.writerow(
                [
                    run.optimizer,
                    f"{run.lr:g}",
                    rec.iteration,
                    f"{rec.total:.6g}",
                    *(f"{rec.terms.get(t, math.nan):.6g}" for t in terms),
                    f"{rec.wall_s:.4f}",
                    rec.func_evals,
                    int(run.diverged),
                    run.status,
                ]
            )
    return buf.getvalue()


def summary(result: StudyResult) -> dict[str, Any]:
    """A JSON-ready summary: the network, settings, whether the study is complete, and per optimiser its status
    (finished / stopped / not run), final/best loss, time and divergence. The winner is among finished runs."""
    finals = {
        r.optimizer: r.final_loss
        for r in result.runs
        if r.status == FINISHED and not r.diverged and math.isfinite(r.final_loss)
    }
    winner = min(finals, key=finals.__getitem__) if finals else None
    return {
        "network": result.network,
        "size": list(result.size),
        "seed": result.seed,
        "iterations": result.iterations,
        **result.info,
        "complete": result.complete,
        "elapsed_s": round(result.elapsed, 3),
        "winner": winner,
        "optimizers": {
            r.optimizer: {
                "label": label(r.optimizer),
                "status": r.status,
                "lr": r.lr,
                "final_loss": _num(r.final_loss),
                "best_loss": _num(r.best_loss),
                "iterations_done": len(r.records),
                "func_evals": r.records[-1].func_evals if r.records else 0,
                "seconds": round(r.seconds, 4),
                "diverged": r.diverged,
                "reason": r.reason,
                "relative_to_winner": _num(r.final_loss / finals[winner]) if winner and r.optimizer in finals else None,
                "scores": _flat_scores(r.scores),
            }
            for r in result.runs
        },
    }


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _flat_scores(scores: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"ssim", "psnr", "gram", "w2", "color_swd"}`` of a run (infinite PSNR as "inf"), None when unmeasured."""
    if scores is None:
        return None
    from .scoring import flat_scores, jsonable

    return jsonable(flat_scores(scores))


def summary_json(result: StudyResult) -> str:
    return json.dumps(summary(result), indent=2) + "\n"


def _label(run: Run) -> str:
    tag = f"{label(run.optimizer)} (lr {run.lr:g})"
    if run.status == STOPPED:
        return tag + f" — stopped at iteration {len(run.records)}"
    return tag + (" — diverged" if run.diverged else "")


def _style(run: Run) -> str:
    """Line style: dashed for a diverged run, dotted for the one a Ctrl-C stopped, solid otherwise."""
    return ":" if run.status == STOPPED else "--" if run.diverged else "-"


def loss_plot(result: StudyResult, x: str = "iteration") -> bytes:
    """PNG bytes: total loss (log scale) against ``iteration`` or ``wall_s``, one line per optimiser; the title
    says INCOMPLETE for a study stopped part way."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=110)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas: Agg for this figure only, whatever the process's backend
    ax = fig.add_subplot()
    for run in result.runs:
        xs = [getattr(r, x) for r in run.records if math.isfinite(r.total) and r.total > 0]
        ys = [r.total for r in run.records if math.isfinite(r.total) and r.total > 0]
        if xs:
            ax.plot(xs, ys, label=_label(run), linewidth=1.6, linestyle=_style(run))
    ax.set_yscale("log")
    ax.set_xlabel("iteration" if x == "iteration" else "wall time (s)")
    ax.set_ylabel("total loss (log scale)")
    w, h = result.size
    title = f"Style-transfer loss by optimiser — {result.network}, {w}x{h} px, seed {result.seed}"
    if not result.complete:
        title += f"\n{INCOMPLETE}"
    ax.set_title(title, fontsize=10, color="black" if result.complete else "darkred")
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=9, frameon=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def results_grid(result: StudyResult, columns: int = 3, tile: int = 256) -> Image.Image:
    """The final images side by side, each labelled with its optimiser and final loss (the stopped one's latest
    image, labelled so); a study stopped part way gets an INCOMPLETE line on top."""
    from ..imaging import fit_size, resize
    from ..media import tensor_to_pil

    runs = [r for r in result.runs if r.image is not None]
    if not runs:
        return Image.new("RGB", (tile, tile), "white")
    images = [tensor_to_pil(r.image) for r in runs]
    size = fit_size(images[0].size, tile)
    label_h, pad = 34, 8
    top = 0 if result.complete else 18
    cols = min(columns, len(images))
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (pad + cols * (size[0] + pad), top + pad + rows * (size[1] + label_h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    if top:
        draw.text((pad, 4), INCOMPLETE, fill=(160, 0, 0))
    for n, (run, im) in enumerate(zip(runs, images, strict=True)):
        r, c = divmod(n, cols)
        x0, y0 = pad + c * (size[0] + pad), top + pad + r * (size[1] + label_h + pad)
        draw.text((x0 + 2, y0 + 2), _label(run).replace("—", "-"), fill=(0, 0, 0))  # a bitmap font: ASCII
        loss = run.final_loss
        draw.text(
            (x0 + 2, y0 + 17), f"final loss {loss:.4g}" if math.isfinite(loss) else "no finite loss", fill=(60, 60, 60)
        )
        sheet.paste(resize(im, size), (x0, y0 + label_h))
    return sheet


def outputs(result: StudyResult) -> dict[str, bytes]:
    """Every file of a study, name -> bytes, in :data:`OUTPUT_FILES` order plus ``records.json``."""
    grid = io.BytesIO()
    results_grid(result).save(grid, format="PNG")
    return {
        "losses.csv": losses_csv(result).encode("utf-8"),
        "summary.json": summary_json(result).encode("utf-8"),
        "loss_vs_iteration.png": loss_plot(result, "iteration"),
        "loss_vs_time.png": loss_plot(result, "wall_s"),
        "results.png": grid.getvalue(),
        RECORDS_FILE: records_json(result).encode("utf-8"),
    }


# --- records.json: the finished runs, to resume from -------------------------------------------------------------


def _float(x: float) -> float | str:
    """Strict JSON has no NaN/inf: those are written as strings ("nan", "inf", "-inf")."""
    return x if math.isfinite(x) else str(x)


def _png_b64(image: Any) -> str | None:  # noqa: ANN401 - a (1, 3, H, W) tensor or None
    if image is None:
        return None
    from ..media import tensor_to_pil

    buf = io.BytesIO()
    tensor_to_pil(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def records_json(result: StudyResult) -> str:
    """``records.json``: the study's fingerprint and every finished run (records and final image, PNG in base64)."""
    runs = [run_to_dict(r) for r in result.finished()]
    doc = {"format": RECORDS_FORMAT, "fingerprint": result.fingerprint, "network": result.network, "runs": runs}
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def run_to_dict(r: Run) -> dict[str, Any]:
    """One run as plain JSON-ready data (records, final image as base64 PNG, scores): a records.json entry, and
    what a worker sends back for one optimiser (:func:`run_from_dict` reverses it)."""
    from .scoring import jsonable

    return {
        "optimizer": r.optimizer,
        "lr": r.lr,
        "diverged": r.diverged,
        "reason": r.reason,
        "records": [
            [
                rec.iteration,
                _float(rec.total),
                {k: _float(v) for k, v in rec.terms.items()},
                rec.wall_s,
                rec.func_evals,
            ]
            for rec in r.records
        ],  # fmt: skip
        "image_png": _png_b64(r.image),
        "scores": None if r.scores is None else jsonable(r.scores),
    }


def run_from_dict(item: dict[str, Any]) -> Run:
    """A finished Run from :func:`run_to_dict`'s data (KeyError/ValueError/TypeError when it is not one)."""
    from ..imaging import pil_to_tensor

    name = str(item["optimizer"])
    records = [
        Record(name, int(it), float(total), {str(k): float(v) for k, v in terms.items()}, float(wall), int(evals))
        for it, total, terms, wall, evals in item["records"]
    ]
    image = None
    if item.get("image_png"):
        with Image.open(io.BytesIO(base64.b64decode(item["image_png"]))) as im:
            image = pil_to_tensor(im)
    scores = item.get("scores")
    if isinstance(scores, dict):  # "inf" back to a float
        scores = {
            k: ({n: float(v) for n, v in g.items()} if isinstance(g, dict) else g) for k, g in scores.items()
        }  # fmt: skip
    return Run(
        optimizer=name, lr=float(item["lr"]), records=records, diverged=bool(item["diverged"]),
        reason=str(item.get("reason", "")), image=image, status=FINISHED,
        scores=scores if isinstance(scores, dict) else None,
    )  # fmt: skip


def parse_records(text: str, source: str = RECORDS_FILE) -> SavedRecords:
    """The runs saved in a ``records.json`` text; ConfigError (one line, naming ``source``) if it is not one."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != RECORDS_FORMAT:
            raise ValueError(f"format {doc.get('format') if isinstance(doc, dict) else None!r}")
        runs: dict[str, Run] = {}
        for item in doc["runs"]:
            run = run_from_dict(item)
            runs[run.optimizer] = run
        fingerprint = doc["fingerprint"]
        if not isinstance(fingerprint, dict):
            raise ValueError("no fingerprint")
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ConfigError(f"{source} is not an impasto study record ({exc}); use --overwrite to start afresh") from None
    return SavedRecords(fingerprint=fingerprint, runs=runs, source=source)


def first_difference(saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """The first setting in which two fingerprints differ, as ``"size: 32 then, 64 now"``; None when equal."""
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            return f"{key}: {_short(saved.get(key))} then, {_short(now.get(key))} now"
    return None


def _short(value: Any) -> str:  # noqa: ANN401
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


# --- the index of a preset's experiments -------------------------------------------------------------------------


def index_html(experiments: list[tuple[str, str, dict[str, Any] | None]]) -> str:
    """An index page for a folder of experiments: (folder name, title, summary dict) each; a summary whose
    ``complete`` is False is marked stopped, and None marks an experiment that has not run."""
    import html

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>impasto optimiser study</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-width:100%}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}</style></head><body>",
        "<h1>Optimiser study</h1>",
    ]
    for folder, title, summ in experiments:
        f = html.escape(folder)
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if summ is None:
            parts.append("<p><strong>not run</strong> (the study was stopped before this experiment)</p>")
            continue
        if not summ.get("complete", True):
            parts.append(f"<p><strong>stopped</strong>: {html.escape(INCOMPLETE)}</p>")
        parts.append(
            f"<p>network: {html.escape(str(summ.get('network')))}; winner: {html.escape(str(summ.get('winner')))}</p>"
        )
        parts.append(
            "<table><tr><th>optimiser</th><th>lr</th><th>final loss</th><th>seconds</th><th>diverged</th>"
            "<th>status</th><th>SSIM</th><th>style W2</th><th>colour SWD</th></tr>"
        )
        for o in summ.get("optimizers", {}).values():
            sc = o.get("scores") or {}
            shown = [html.escape("" if sc.get(k) is None else f"{sc[k]:.4g}") for k in ("ssim", "w2", "color_swd")]
            parts.append(
                f"<tr><td>{html.escape(o['label'])}</td><td>{o['lr']:g}</td><td>{o['final_loss']}</td>"
                f"<td>{o['seconds']}</td><td>{'yes' if o['diverged'] else ''}</td>"
                f"<td>{html.escape(o.get('status', FINISHED))}</td><td>{shown[0]}</td><td>{shown[1]}</td>"
                f"<td>{shown[2]}</td></tr>"
            )
        parts.append("</table>")
        for img in ("loss_vs_iteration.png", "loss_vs_time.png", "results.png"):
            parts.append(f"<p><img src='{f}/{img}' alt='{img}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
