"""Check impasto's BigGAN-deep against pytorch-pretrained-BigGAN (the reference) on a small random model.

The reference package is not a dependency and none of its code is in impasto. Install it in a scratch venv:

    python3 -m venv /tmp/refbiggan
    /tmp/refbiggan/bin/pip install torch==2.13.0
    /tmp/refbiggan/bin/pip install --no-deps pytorch-pretrained-biggan
    /tmp/refbiggan/bin/pip install numpy scipy boto3 requests tqdm

then run ``.venv/bin/python scripts/verify_biggan_reference.py [--reference-python /tmp/refbiggan/bin/python]``.

The reference side runs in that interpreter (``--child``): it builds its own ``BigGAN`` from a small config, gives
it random weights, runs its spectral-norm power iterations (train-mode forwards) so ``weight_u``/``weight_v`` are
meaningful, draws random batch-norm statistics, saves ``config.json`` + ``pytorch_model.bin`` exactly as its
converter does (``torch.save(model.state_dict())``, ``config.to_json_string()``), and records its eval-mode outputs
for fixed inputs at several truncations (on and between the 1/50 grid, including the values its rounding moves).
This side loads that folder through impasto's normal loader and prints the max abs differences as JSON. Exits 0
with a message when no reference interpreter is found, 1 when a difference exceeds --tolerance.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TRUNCATIONS = [1.0, 0.4, 0.405, 0.5, 0.14, 0.58, 0.07, 0.9999, 0.02]
SMALL_CONFIG = {
    "output_dim": 64,
    "z_dim": 128,
    "class_embed_dim": 128,
    "channel_width": 16,
    "num_classes": 1000,
    "layers": [[False, 16, 16], [True, 16, 8], [False, 8, 8], [True, 8, 4], [True, 4, 2], [True, 2, 1]],
    "attention_layer_position": 3,
    "eps": 1e-4,
    "n_stats": 51,
}


def child(out: Path, seed: int) -> None:
    """Runs inside the reference's interpreter."""
    import torch
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig, one_hot_from_int, truncated_noise_sample

    torch.manual_seed(seed)
    config = BigGANConfig.from_dict(SMALL_CONFIG)
    model = BigGAN(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.7)
            elif p.dim() == 1:
                p.normal_(0, 0.05)
            else:
                p.normal_(0, 1.0 / max(1, p[0].numel()) ** 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_means"):
                b.normal_(0, 0.2)
            elif name.endswith("running_vars"):
                b.uniform_(0.3, 1.7)
        model.generator.bn.weight.normal_(8.0, 1.0)  # spread the outputs over tanh's range, not only near 0
        model.train()  # torch's spectral norm runs one power iteration per train-mode forward
        z = torch.randn(2, config.z_dim)
        c = torch.softmax(torch.randn(2, config.num_classes), 1)
        for _ in range(20):
            model(z, c, 1.0)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "pytorch_model.bin")
    (out / "config.json").write_text(config.to_json_string(), encoding="utf-8")

    model.eval()
    z = torch.from_numpy(truncated_noise_sample(batch_size=4, truncation=1.0, seed=seed))
    onehot = torch.from_numpy(one_hot_from_int([933, 207, 8, 1], batch_size=4))
    mixed = 0.6 * onehot + 0.4 * torch.from_numpy(one_hot_from_int([1, 2, 3, 4], batch_size=4))
    results = {"z": z, "onehot": onehot, "mixed": mixed, "outputs": {}}
    with torch.no_grad():
        for t in TRUNCATIONS:
            results["outputs"][f"onehot@{t}"] = model(z * t, onehot, t)
            results["outputs"][f"mixed@{t}"] = model(z * t, mixed, t)
    torch.save(results, out / "reference_outputs.pt")


def find_reference_python(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    if importlib.util.find_spec("pytorch_pretrained_biggan") is not None:
        return sys.executable
    default = Path("/tmp/refbiggan/bin/python")
    return str(default) if default.exists() else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-python", help="interpreter with pytorch-pretrained-biggan installed")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--keep", type=Path, help="write the reference folder here instead of a temporary one")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.seed)
        return 0

    ref_python = find_reference_python(args.reference_python)
    if ref_python is None:
        print("pytorch-pretrained-biggan not found (see this script's docstring); skipping")
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch

    from impasto.nets.biggan import Precision
    from impasto.zoo.biggan_format import load_biggan_dir

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "ref-small"
        subprocess.run(
            [ref_python, __file__, "--child", str(folder), "--seed", str(args.seed)],
            check=True,
            cwd=tempfile.gettempdir(),
        )
        ref = torch.load(folder / "reference_outputs.pt", weights_only=True)
        outs = torch.stack(list(ref["outputs"].values()))
        report: dict = {
            "config": SMALL_CONFIG,
            "reference_python": ref_python,
            "reference_output": {"min": float(outs.min()), "max": float(outs.max()), "std": float(outs.std())},
            "max_abs_diff": {},
        }
        variants = {
            "fp32": Precision(),
            "fp32_channels_last": Precision(channels_last=True),
            "bf16": Precision(dtype=torch.bfloat16),
        }
        for vname, precision in variants.items():
            model = load_biggan_dir(folder, precision)
            diffs = {}
            with torch.inference_mode():
                for t in TRUNCATIONS:
                    for cname in ("onehot", "mixed"):
                        ours = model(ref["z"] * t, ref[cname], t)
                        diffs[f"{cname}@{t}"] = float((ours - ref["outputs"][f"{cname}@{t}"]).abs().max())
            report["max_abs_diff"][vname] = {"max": max(diffs.values()), "per_input": diffs}
            if vname == "fp32":
                lin = load_biggan_dir(folder, Precision(bn_stats="linear"))
                with torch.inference_mode():
                    t = 0.405
                    d = float((lin(ref["z"] * t, ref["onehot"], t) - ref["outputs"][f"onehot@{t}"]).abs().max())
                report["bn_stats_linear_vs_reference_at_0.405"] = d
    print(json.dumps(report, indent=2))
    worst = report["max_abs_diff"]["fp32"]["max"]
    if worst > args.tolerance:
        print(f"FAIL: fp32 max abs diff {worst:.3g} > {args.tolerance}", file=sys.stderr)
        return 1
    print(f"OK: fp32 max abs diff {worst:.3g} <= {args.tolerance}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
