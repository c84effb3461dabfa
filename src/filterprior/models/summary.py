"""Counting and describing models: parameters, FLOPs, conv layers, per-layer summaries, the zoo table."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from filterprior.errors import UserError
from filterprior.models.introspect import conv_layers
from filterprior.models.registry import check_int, create_model, list_models

BYTES_PER_FLOAT32 = 4
MB = 1024**2


def count_parameters(model: nn.Module) -> int:
    """Number of scalars in the model's parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def _input_channels(model: nn.Module) -> int:
    convs = conv_layers(model)
    return convs[0][1].in_channels if convs else 3


@contextmanager
def _hooked_eval(model: nn.Module, modules: list[nn.Module], hook: Callable[..., None]) -> Iterator[None]:
    """Eval mode (BatchNorm1d cannot train on one image) and forward hooks, both undone afterwards."""
    was_training = model.training
    handles = [m.register_forward_hook(hook) for m in modules]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def _one_image(model: nn.Module, image_size: int) -> torch.Tensor:
    check_int("image_size", image_size, minimum=1)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    return torch.zeros(1, _input_channels(model), image_size, image_size, device=device, dtype=dtype)


def forward_error(model: nn.Module, image_size: int) -> RuntimeError | None:
    """The error one zero image of image_size x image_size raises in the model (eval mode, no grad, its
    training mode restored), or None when the model takes that size."""
    with _hooked_eval(model, [], lambda *_: None):
        try:
            model(_one_image(model, image_size))
        except RuntimeError as exc:
            return exc
    return None


def _run(model: nn.Module, image: torch.Tensor) -> None:
    try:
        model(image)
    except RuntimeError as exc:
        side = image.shape[-1]
        raise UserError(f"image_size {side} does not fit this model ({exc}); the zoo expects 32") from exc


def flops_per_image(model: nn.Module, image_size: int = 32) -> int:
    """FLOPs of one forward pass on one image: 2 x the multiply-adds of every Conv2d and Linear layer.

    Counted with forward hooks on a single zero image of `image_size` x `image_size` (eval mode, no grad).
    Biases, normalisation, activations and pooling are not counted.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs_per_output = (module.in_channels // module.groups) * kh * kw
            total += 2 * output.numel() * macs_per_output
        else:  # nn.Linear: every output scalar takes in_features multiply-adds
            total += 2 * output.numel() * module.in_features

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    image = _one_image(model, image_size)
    with _hooked_eval(model, layers, hook):
        _run(model, image)
    return total


def summarize(model: nn.Module, image_size: int = 32, batch_size: int = 128) -> dict[str, Any]:
    """Per-layer rows and totals for `model` on `batch_size` images of `image_size` x `image_size`.

    Rows come from forward hooks on the leaf modules (one row per call): name, type, output shape (with
    the batch dimension) and the module's own parameters. `activation_mb` is the sum of the leaf outputs'
    sizes x batch x 4 bytes (float32): a rough guide to forward memory, not an exact autograd figure.
    """
    check_int("batch_size", batch_size, minimum=1)
    names = {module: name for name, module in model.named_modules()}
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    rows: list[dict[str, Any]] = []
    activations_per_image = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal activations_per_image
        activations_per_image += output.numel()  # the hook runs on one image
        rows.append(
            {
                "name": names[module],
                "type": type(module).__name__,
                "output_shape": [batch_size, *output.shape[1:]],
                "params": sum(p.numel() for p in module.parameters(recurse=False)),
            }
        )

    image = _one_image(model, image_size)
    with _hooked_eval(model, leaves, hook):
        _run(model, image)
    params = count_parameters(model)
    return {
        "layers": rows,
        "params": params,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "param_mb": params * BYTES_PER_FLOAT32 / MB,
        "activation_mb": activations_per_image * batch_size * BYTES_PER_FLOAT32 / MB,
        "flops_per_image": flops_per_image(model, image_size),
        "image_size": image_size,
        "batch_size": batch_size,
    }


def _human_flops(flops: int) -> str:
    if flops >= 10**9:
        return f"{flops / 1e9:.2f} GFLOPs"
    return f"{flops / 1e6:.1f} MFLOPs"


def format_summary(
    name: str, num_classes: int = 10, batch_size: int = 128, image_size: int = 32, **options: Any
) -> str:
    """A readable, aligned per-layer table of the registered model `name`, with totals."""
    model = create_model(name, num_classes=num_classes, **options)
    info = summarize(model, image_size=image_size, batch_size=batch_size)
    table = [("layer", "type", "output shape", "params")]
    for row in info["layers"]:
        shape = "x".join(str(d) for d in row["output_shape"])
        table.append((row["name"], row["type"], shape, f"{row['params']:,}"))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    rule = "-" * (sum(widths) + 6)

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            [cells[0].ljust(widths[0]), cells[1].ljust(widths[1]), cells[2].ljust(widths[2]),
             cells[3].rjust(widths[3])]
        )

    settings = ", ".join(f"{k}={v!r}" for k, v in options.items())
    header = f"model {name} ({num_classes} classes{', ' + settings if settings else ''})"
    out = [header, line(table[0]), rule, *(line(r) for r in table[1:]), rule]
    out += [
        f"parameters:       {info['params']:,} ({info['trainable_params']:,} trainable), "
        f"{info['param_mb']:.2f} MB as float32",
        f"activations:      {info['activation_mb']:.1f} MB for a batch of {batch_size} "
        f"(sum of leaf outputs x 4 bytes)",
        f"FLOPs per image:  {info['flops_per_image']:,} ({_human_flops(info['flops_per_image'])}, "
        f"{image_size}x{image_size})",
    ]
    return "\n".join(out)


def model_rows() -> list[dict[str, Any]]:
    """One row per registered model with default options: name, params (10 classes), FLOPs per image."""
    rows = []
    for name in list_models():
        model = create_model(name, num_classes=10)
        rows.append(
            {"name": name, "params": count_parameters(model), "flops_per_image": flops_per_image(model)}
        )
    return rows


def format_models_table(as_json: bool = False) -> str:
    """The zoo as an aligned text table (or JSON): name, parameters, FLOPs per 32x32 image."""
    rows = model_rows()
    if as_json:
        return json.dumps(rows, indent=2)
    table = [("model", "params", "FLOPs/image")]
    table += [(r["name"], f"{r['params']:,}", _human_flops(r["flops_per_image"])) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    lines = [f"{a.ljust(widths[0])}  {b.rjust(widths[1])}  {c.rjust(widths[2])}" for a, b, c in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
