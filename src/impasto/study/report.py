"""Turn a StudyResult into tables, plots and a labelled grid, in memory (the CLI writes them atomically)."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from PIL import Image, ImageDraw

from .records import StudyResult, label

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
    """One row per optimiser and iteration: optimizer, lr, iteration, total, <terms>, wall_s, func_evals, diverged."""
    terms = term_names(result)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["optimizer", "lr", "iteration", "total", *terms, "wall_s", "func_evals", "diverged"])
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
                ]
            )
    return buf.getvalue()


def summary(result: StudyResult) -> dict[str, Any]:
    """A JSON-ready summary: the network, settings, and per optimiser its final/best loss, time, divergence."""
    finals = {r.optimizer: r.final_loss for r in result.runs if not r.diverged and math.isfinite(r.final_loss)}
    winner = min(finals, key=finals.__getitem__) if finals else None
    return {
        "network": result.network,
        "size": list(result.size),
        "seed": result.seed,
        "iterations": result.iterations,
        **result.info,
        "winner": winner,
        "optimizers": {
            r.optimizer: {
                "label": label(r.optimizer),
                "lr": r.lr,
                "final_loss": _num(r.final_loss),
                "best_loss": _num(r.best_loss),
                "iterations_done": len(r.records),
                "func_evals": r.records[-1].func_evals if r.records else 0,
                "seconds": round(r.seconds, 4),
                "diverged": r.diverged,
                "reason": r.reason,
                "relative_to_winner": _num(r.final_loss / finals[winner]) if winner and r.optimizer in finals else None,
            }
            for r in result.runs
        },
    }


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def summary_json(result: StudyResult) -> str:
    return json.dumps(summary(result), indent=2) + "\n"


def _label(run: Any) -> str:  # noqa: ANN401 - a Run
    tag = f"{label(run.optimizer)} (lr {run.lr:g})"
    return tag + (" — diverged" if run.diverged else "")


def loss_plot(result: StudyResult, x: str = "iteration") -> bytes:
    """PNG bytes: total loss (log scale) against ``iteration`` or ``wall_s``, one line per optimiser."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for run in result.runs:
        xs = [getattr(r, x) for r in run.records if math.isfinite(r.total) and r.total > 0]
        ys = [r.total for r in run.records if math.isfinite(r.total) and r.total > 0]
        if xs:
            ax.plot(xs, ys, label=_label(run), linewidth=1.6, linestyle="--" if run.diverged else "-")
    ax.set_yscale("log")
    ax.set_xlabel("iteration" if x == "iteration" else "wall time (s)")
    ax.set_ylabel("total loss (log scale)")
    w, h = result.size
    ax.set_title(f"Style-transfer loss by optimiser — {result.network}, {w}x{h} px, seed {result.seed}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, frameon=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def results_grid(result: StudyResult, columns: int = 3, tile: int = 256) -> Image.Image:
    """The final images side by side, each labelled with its optimiser and final loss."""
    from ..imaging import fit_size, resize
    from ..media import tensor_to_pil

    runs = [r for r in result.runs if r.image is not None]
    if not runs:
        return Image.new("RGB", (tile, tile), "white")
    images = [tensor_to_pil(r.image) for r in runs]
    size = fit_size(images[0].size, tile)
    label_h, pad = 34, 8
    cols = min(columns, len(images))
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (pad + cols * (size[0] + pad), pad + rows * (size[1] + label_h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (run, im) in enumerate(zip(runs, images, strict=True)):
        r, c = divmod(n, cols)
        x0, y0 = pad + c * (size[0] + pad), pad + r * (size[1] + label_h + pad)
        draw.text((x0 + 2, y0 + 2), _label(run), fill=(0, 0, 0))
        loss = run.final_loss
        draw.text(
            (x0 + 2, y0 + 17), f"final loss {loss:.4g}" if math.isfinite(loss) else "no finite loss", fill=(60, 60, 60)
        )
        sheet.paste(resize(im, size), (x0, y0 + label_h))
    return sheet


def index_html(experiments: list[tuple[str, str, dict[str, Any]]]) -> str:
    """An index page for a folder of experiments: (folder name, title, summary dict) each."""
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
        parts.append(
            f"<p>network: {html.escape(str(summ.get('network')))}; winner: {html.escape(str(summ.get('winner')))}</p>"
        )
        parts.append(
            "<table><tr><th>optimiser</th><th>lr</th><th>final loss</th><th>seconds</th><th>diverged</th></tr>"
        )
        for o in summ.get("optimizers", {}).values():
            parts.append(
                f"<tr><td>{html.escape(o['label'])}</td><td>{o['lr']:g}</td><td>{o['final_loss']}</td>"
                f"<td>{o['seconds']}</td><td>{'yes' if o['diverged'] else ''}</td></tr>"
            )
        parts.append("</table>")
        for img in ("loss_vs_iteration.png", "loss_vs_time.png", "results.png"):
            parts.append(f"<p><img src='{f}/{img}' alt='{img}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
