"""The SPN's three-way spatial propagation in plain PyTorch (stands in for the reference's CUDA extension).

Owned by the photo-realistic path; :class:`impasto.nets.linear.SPNBlock` calls :func:`propagate` after normalising
the gates. The contract below is what the reference's ``pytorch_spn`` ``GateRecurrent2dnoind(horizontal, reverse)``
computes (``src/cuda/gaterecurrent2dnoind_kernel.cu``, forward kernels ``forward_one_col_left_right`` ... and their
drivers ``Forward_left_right`` ...), checked line by line against that source: ``get_gate_idx_sf`` picks, of the
pixel and its neighbour, the one further along the scan -- the pixel itself -- so the gate is read at the pixel
being computed; ``get_gate_sf``/``get_data_sf`` return 0 for a neighbour outside the image.

How it runs here: a horizontal scan transposes H and W once (contiguous copies; the slices a step reads are then
rows, not strided columns: 2-3x faster than stepping over columns in place) so every direction is a scan over
dim 2 of an ``(N, C, T, L)`` tensor, T the columns or rows scanned and L the other side; a reverse scan walks t
downwards (no flipped copies). Each step updates a whole column/row at once from the previous one shifted by
-1/0/+1 along L -- no per-pixel Python loop -- and autograd differentiates it (the reference has a hand-written
CUDA backward).
"""

from __future__ import annotations

import torch

__all__ = ["propagate"]


def propagate(
    x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor, horizontal: bool, reverse: bool
) -> torch.Tensor:
    """The linear three-way recurrence ``H`` of ``x`` under gates ``g1, g2, g3``; all ``(N, C, H, W)``, same dtype.

    The scan runs one column (``horizontal``) or one row (not ``horizontal``) at a time:

    - ``horizontal, not reverse``: left -> right, columns w = 0 .. W-1; neighbours of (h, w) in the previous column:
      ``(h-1, w-1)`` for g1, ``(h, w-1)`` for g2, ``(h+1, w-1)`` for g3.
    - ``horizontal, reverse``: right -> left, w = W-1 .. 0; neighbours ``(h-1, w+1)``, ``(h, w+1)``, ``(h+1, w+1)``.
    - ``not horizontal, not reverse``: top -> bottom, rows h = 0 .. H-1; neighbours ``(h-1, w-1)``, ``(h-1, w)``,
      ``(h-1, w+1)``.
    - ``not horizontal, reverse``: bottom -> top, h = H-1 .. 0; neighbours ``(h+1, w-1)``, ``(h+1, w)``,
      ``(h+1, w+1)``.

    At every pixel p (per batch item and channel, channels independent)::

        H[p] = (1 - a1 - a2 - a3) * x[p] + a1 * H[n1] + a2 * H[n2] + a3 * H[n3]

    where ``n1, n2, n3`` are the neighbours above and ``ak = gk[p]`` -- the gate is read at the pixel being
    computed, not at the neighbour -- when ``nk`` lies inside the image, and ``ak = 0`` when it lies outside
    (so at the first column/row ``H = x``, and on the borders the ``x`` coefficient counts only the gates of
    neighbours that exist). ``H`` of a neighbour is the already-computed output of the previous column/row.
    Returns ``H``, ``(N, C, H, W)``. Differentiable through autograd (the reference has a hand-written backward).
    """
    if not (x.shape == g1.shape == g2.shape == g3.shape) or x.dim() != 4:
        shapes = ", ".join(str(tuple(t.shape)) for t in (x, g1, g2, g3))
        raise ValueError(f"propagate needs four (N, C, H, W) tensors of one shape, got {shapes}")
    if x.numel() == 0:
        return x.clone()
    if horizontal:  # scan over W: make the columns rows, (N, C, W, H), so each step reads contiguous rows
        x, g1, g2, g3 = (t.transpose(2, 3).contiguous() for t in (x, g1, g2, g3))
    steps = x.shape[2]
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    out: list[torch.Tensor] = [x[:, :, 0]] * steps  # placeholders, every one replaced below
    prev: torch.Tensor | None = None
    for t in order:
        xt = x[:, :, t]  # (N, C, L)
        if prev is None:
            prev = xt  # the first column/row has no neighbours: H = x there
        else:
            # H = x + a1 (n1 - x) + a2 (n2 - x) + a3 (n3 - x), which is the contract's
            # (1 - a1 - a2 - a3) x + a1 n1 + a2 n2 + a3 n3. A neighbour outside the image (l-1 < 0 or l+1 >= L) is
            # given the value x[p] itself, so its term vanishes: the same as the reference's zero gate there.
            nb = torch.cat([xt[..., :1], prev, xt[..., -1:]], dim=-1)  # (N, C, L+2): previous H at l-1, l, l+1
            h = torch.addcmul(xt, g1[:, :, t], nb[..., :-2] - xt)
            h = torch.addcmul(h, g2[:, :, t], prev - xt)
            prev = torch.addcmul(h, g3[:, :, t], nb[..., 2:] - xt)
        out[t] = prev
    result = torch.stack(out, dim=2)  # (N, C, T, L)
    return result.transpose(2, 3) if horizontal else result
