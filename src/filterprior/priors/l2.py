"""L2 prior: plain weight decay on the selected conv layers only (the baseline a filter prior must beat)."""

from __future__ import annotations

from torch import Tensor, nn

from filterprior.priors.base import LossTerm, register_prior


@register_prior("l2")
class L2Prior(LossTerm):
    """Loss = sum of squared weights of each selected layer (raw: decay is about scale, so no normalising)."""

    def layer_losses(self, model: nn.Module) -> dict[str, Tensor]:
        out = {}
        for layer, weight in self.weights(model).items():
            out[layer] = weight.float().pow(2).sum()
            self._metrics[f"sq_norm/{layer}"] = out[layer].detach()
        return out
