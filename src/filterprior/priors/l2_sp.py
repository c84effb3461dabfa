"""L2-SP prior (Li, Grandvalet & Davoine 2018): pull the chosen layers back toward their starting point.

With `init.from_bank=true` the starting point is the bank's kernels, so this is the plainest prior
over filters there is: stay near the bank's, by a squared distance. The anchor is each layer's weight as
the model holds it when the prior is built (after init from the bank). The anchors go into the
checkpoint: a resumed run must pull toward the start it had, not toward whatever init it rebuilds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from filterprior.config import PriorConfig
from filterprior.banks.bank import FilterBank
from filterprior.priors.base import LayerTensors, LossTerm, module_key, register_prior


@register_prior("l2-sp")
class L2SPPrior(LossTerm):
    """Loss = sum of squared differences between each chosen layer's weight and its starting weight."""

    def __init__(self, cfg: PriorConfig, model: nn.Module, device: torch.device | str, bank: FilterBank | None = None):
        super().__init__(cfg, model, device, bank)
        # saved (persistent buffers): a resumed run must pull toward the start it had
        self.anchors = LayerTensors(
            {layer: weight.detach().float().clone() for layer, weight in self.weights(model).items()}, persistent=True
        ).to(self.device)

    def layer_losses(self, model: nn.Module) -> dict[str, Tensor]:
        out = {}
        for layer, weight in self.weights(model).items():
            out[layer] = (weight.float() - self.anchors[layer]).pow(2).sum()
            self._metrics[f"sq_dist/{layer}"] = out[layer].detach()
        return out

    def from_legacy_state(self, state) -> dict[str, Any]:
        """{'generator', 'anchors': {layer: tensor}}."""
        return {**super().from_legacy_state(state),
                **{f"anchors.{module_key(layer)}": anchor for layer, anchor in state["anchors"].items()}}
