"""The model zoo: a registry of constructors plus counting and summary helpers.

Importing this package registers every model (the family modules register themselves on import).
"""

from filterprior.models import (  # noqa: F401  (register)
    airnet,
    filternet,
    mynet,
    resnet,
    resnet_imagenet,
    resnet_scaled,
    simplecnn,
)
from filterprior.models.introspect import conv_layers, norms_after_convs, select_layers, unwrap
from filterprior.models.registry import create_model, list_models, model_options, register_model
from filterprior.models.summary import (
    count_parameters,
    flops_per_image,
    format_models_table,
    format_summary,
    model_rows,
    summarize,
)

__all__ = [
    "conv_layers",
    "count_parameters",
    "create_model",
    "flops_per_image",
    "format_models_table",
    "format_summary",
    "list_models",
    "model_options",
    "model_rows",
    "norms_after_convs",
    "register_model",
    "select_layers",
    "summarize",
    "unwrap",
]
