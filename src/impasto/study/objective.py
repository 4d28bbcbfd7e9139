"""The Gatys engine's loss as an :class:`~impasto.study.compare.Objective` over 0–255 pixel units.

The original study optimised Caffe-preprocessed images (0–255 scale, mean subtracted), so a learning rate
of 10 moves a pixel by about 10 levels. Whatever range the chosen network takes, the study optimises in
those units and converts on the way in: identity for Caffe networks, ``/255`` for RGB [0, 1] networks
(the offline MobileNetV2), ``/255`` then ImageNet mean/std for torchvision's VGG.
"""

from __future__ import annotations

import torch

from ..gatys.optimize import Problem, evaluate
from ..gatys.preprocess import IMAGENET_MEAN, IMAGENET_STD, deprocess
from ..zoo.registry import CAFFE_BGR, TORCH_RGB


class GatysObjective:
    """The painting loss of ``problem`` (content + style + TV, as ``impasto paint`` computes it)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.network = problem.model
        self.line_search = problem.config.lbfgs_line_search  # L-BFGS runs as impasto paint would on this network
        contract = problem.contract
        dev = problem.device
        if contract == CAFFE_BGR:
            self._scale, self._shift = torch.ones(1, 3, 1, 1, device=dev), torch.zeros(1, 3, 1, 1, device=dev)
        elif contract == TORCH_RGB:
            std = torch.tensor(IMAGENET_STD, device=dev).view(1, 3, 1, 1)
            mean = torch.tensor(IMAGENET_MEAN, device=dev).view(1, 3, 1, 1)
            self._scale, self._shift = 1.0 / (255.0 * std), -mean / std
        else:  # rgb-01
            self._scale, self._shift = (
                torch.full((1, 3, 1, 1), 1 / 255.0, device=dev),
                torch.zeros(1, 3, 1, 1, device=dev),
            )

    def to_network(self, units: torch.Tensor) -> torch.Tensor:
        """0–255 units -> the network's input space (an affine map per channel)."""
        return units * self._scale + self._shift

    def initial(self) -> torch.Tensor:
        return ((self.problem.init.detach() - self._shift) / self._scale).clone()

    def __call__(self, units: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss, record = evaluate(self.problem, self.to_network(units))
        terms = {"content": 0.0, "style": 0.0}
        for key, value in record.items():
            kind = key.split(":", 1)[0]
            if kind in ("content", "style"):
                terms[kind] += value
            elif kind == "tv":
                terms["tv"] = value
        return loss, terms

    def to_image(self, units: torch.Tensor) -> torch.Tensor:
        return deprocess(self.to_network(units.detach()), self.problem.contract)
