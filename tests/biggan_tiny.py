"""A tiny BigGAN-deep in pytorch-pretrained-BigGAN's checkpoint layout, written by the tests themselves.

The key layout below is spelled out from the reference's module tree (not derived from impasto's code), and
``plain_forward`` is a direct, unoptimised transcription of the BigGAN-deep equations on those raw tensors
(spectral norm divided on every call, explicit upsampling, full conv_to_rgb, softmax attention), so comparing
impasto against it checks the folding, the fused ops and the sub-pixel convolutions independently.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

TINY = {
    "output_dim": 16,
    "z_dim": 128,
    "class_embed_dim": 128,
    "channel_width": 4,
    "num_classes": 1000,
    "layers": [[True, 16, 8], [False, 8, 4], [True, 4, 2], [False, 2, 1]],
    "attention_layer_position": 2,
    "eps": 1e-4,
    "n_stats": 51,
}


def reference_state_dict(cfg: dict = TINY, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ch, z, n = cfg["channel_width"], cfg["z_dim"], cfg["n_stats"]
    cond = 2 * z
    sd: dict[str, torch.Tensor] = {}

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    def sn(prefix: str, shape: tuple[int, ...], bias: bool = False) -> None:
        w = randn(*shape) / math.sqrt(math.prod(shape[1:]))
        wm = w.reshape(shape[0], -1)
        u = F.normalize(randn(shape[0]), dim=0)
        for _ in range(3):
            v = F.normalize(wm.t() @ u, dim=0)
            u = F.normalize(wm @ v, dim=0)
        sd[prefix + ".weight_orig"], sd[prefix + ".weight_u"], sd[prefix + ".weight_v"] = w, u, v
        if bias:
            sd[prefix + ".bias"] = 0.05 * randn(shape[0])

    def bn(prefix: str, c: int, conditional: bool = True) -> None:
        sd[prefix + ".running_means"] = 0.2 * randn(n, c)
        sd[prefix + ".running_vars"] = 0.3 + torch.rand(n, c, generator=g)
        if conditional:
            sn(prefix + ".scale", (c, cond))
            sn(prefix + ".offset", (c, cond))
        else:
            sd[prefix + ".weight"] = 4.0 + randn(c)  # spreads the outputs over tanh's range
            sd[prefix + ".bias"] = 0.1 * randn(c)

    sd["embeddings.weight"] = 0.5 * randn(z, cfg["num_classes"])
    sn("generator.gen_z", (4 * 4 * 16 * ch, cond), bias=True)
    i = 0
    for idx, (_up, cin, cout) in enumerate(cfg["layers"]):
        if idx == cfg["attention_layer_position"]:
            p, c = f"generator.layers.{i}", ch * cin
            sn(p + ".snconv1x1_theta", (c // 8, c, 1, 1))
            sn(p + ".snconv1x1_phi", (c // 8, c, 1, 1))
            sn(p + ".snconv1x1_g", (c // 2, c, 1, 1))
            sn(p + ".snconv1x1_o_conv", (c, c // 2, 1, 1))
            sd[p + ".gamma"] = torch.tensor([0.7])
            i += 1
        p, cin, cout = f"generator.layers.{i}", ch * cin, ch * cout
        mid = cin // 4
        bn(p + ".bn_0", cin)
        sn(p + ".conv_0", (mid, cin, 1, 1), bias=True)
        bn(p + ".bn_1", mid)
        sn(p + ".conv_1", (mid, mid, 3, 3), bias=True)
        bn(p + ".bn_2", mid)
        sn(p + ".conv_2", (mid, mid, 3, 3), bias=True)
        bn(p + ".bn_3", mid)
        sn(p + ".conv_3", (cout, mid, 1, 1), bias=True)
        i += 1
    bn("generator.bn", ch, conditional=False)
    sn("generator.conv_to_rgb", (ch, ch, 3, 3), bias=True)
    return sd


def write_dir(folder: Path, cfg: dict = TINY, seed: int = 0, sd: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    torch.save(sd if sd is not None else reference_state_dict(cfg, seed), folder / "pytorch_model.bin")
    return folder


def plain_forward(sd: dict, cfg: dict, z: torch.Tensor, y: torch.Tensor, t: float) -> torch.Tensor:
    """The reference computation, written out plainly (float64 for a tight comparison)."""
    sd = {k: v.double() for k, v in sd.items()}
    z, y = z.double(), y.double()
    ch, eps = cfg["channel_width"], cfg["eps"]
    coef, start = math.modf(t / (1.0 / (cfg["n_stats"] - 1)))  # the reference's statistic selection
    start = int(start)

    def w(p: str) -> torch.Tensor:
        wo, u, v = sd[p + ".weight_orig"], sd[p + ".weight_u"], sd[p + ".weight_v"]
        return wo / torch.dot(u, wo.reshape(wo.shape[0], -1) @ v)

    def stats(p: str) -> tuple[torch.Tensor, torch.Tensor]:
        m, v = sd[p + ".running_means"], sd[p + ".running_vars"]
        if coef == 0.0:
            return m[start], v[start]
        return m[start] * coef + m[start + 1] * (1 - coef), v[start] * coef + v[start + 1] * (1 - coef)

    def cbn(x: torch.Tensor, p: str, c: torch.Tensor) -> torch.Tensor:
        mean, var = stats(p)
        gain = 1 + c @ w(p + ".scale").t()
        bias = c @ w(p + ".offset").t()
        x = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + eps)
        return torch.relu(x * gain[:, :, None, None] + bias[:, :, None, None])

    def conv(x: torch.Tensor, p: str, pad: int = 0) -> torch.Tensor:
        return F.conv2d(x, w(p), sd.get(p + ".bias"), padding=pad)

    c = torch.cat([z, y @ sd["embeddings.weight"].t()], 1)
    h = c @ w("generator.gen_z").t() + sd["generator.gen_z.bias"]
    h = h.view(-1, 4, 4, 16 * ch).permute(0, 3, 1, 2)
    i = 0
    for idx, (up, _cin, _cout) in enumerate(cfg["layers"]):
        if idx == cfg["attention_layer_position"]:
            p = f"generator.layers.{i}"
            n, cc, hh, ww = h.shape
            theta = conv(h, p + ".snconv1x1_theta").view(n, cc // 8, hh * ww)
            phi = F.max_pool2d(conv(h, p + ".snconv1x1_phi"), 2).view(n, cc // 8, -1)
            gg = F.max_pool2d(conv(h, p + ".snconv1x1_g"), 2).view(n, cc // 2, -1)
            attn = torch.softmax(theta.transpose(1, 2) @ phi, -1)  # (N, HW, HW/4)
            o = (gg @ attn.transpose(1, 2)).view(n, cc // 2, hh, ww)
            h = h + sd[p + ".gamma"] * conv(o, p + ".snconv1x1_o_conv")
            i += 1
        p = f"generator.layers.{i}"
        x0 = h
        h = conv(cbn(h, p + ".bn_0", c), p + ".conv_0")
        h = cbn(h, p + ".bn_1", c)
        if up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = conv(h, p + ".conv_1", 1)
        h = conv(cbn(h, p + ".bn_2", c), p + ".conv_2", 1)
        h = conv(cbn(h, p + ".bn_3", c), p + ".conv_3")
        if x0.shape[1] != h.shape[1]:
            x0 = x0[:, : x0.shape[1] // 2]
        if up:
            x0 = F.interpolate(x0, scale_factor=2, mode="nearest")
        h = h + x0
        i += 1
    mean, var = stats("generator.bn")
    h = F.batch_norm(h, mean, var, sd["generator.bn.weight"], sd["generator.bn.bias"], False, 0.0, eps)
    h = conv(torch.relu(h), "generator.conv_to_rgb", 1)[:, :3]
    return torch.tanh(h).float()
