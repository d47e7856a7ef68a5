"""Cheap gradients for any network with global average pooling.

``nn.AdaptiveAvgPool2d(1)`` computes a mean whose backward pass writes a full
(C, H, W) gradient for every class backpropagated; the project's own
:class:`~utilities.models.GlobalAveragePool` sums first and divides the small
sum, so its backward pass is a broadcast view and CAMs for all 1000 classes
cost little more than one forward pass. :func:`broadcast_pooling` gives any
network that benefit for the duration of a ``with`` block: it swaps each
global ``nn.AdaptiveAvgPool2d`` module for a ``GlobalAveragePool`` and puts
the original modules back afterwards, also when the block raises.

Only modules can be swapped. A network that pools in its ``forward`` code
(``x.mean((2, 3))``, ``F.adaptive_avg_pool2d(x, 1)``, ``torch.flatten(x, 2).mean(-1)``)
keeps its slower backward pass; rewrite that line as ``self.avgpool(x)`` with an
``nn.AdaptiveAvgPool2d(1)`` (or a ``GlobalAveragePool``) to get it.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

from torch import nn

from .models import GlobalAveragePool

__all__ = ["broadcast_pooling", "global_average_pools"]


def _is_global_average_pool(module: nn.Module) -> bool:
    """An ``nn.AdaptiveAvgPool2d`` whose output is 1x1: ``output_size`` 1 or (1, 1)."""
    if type(module) is not nn.AdaptiveAvgPool2d:  # a subclass may change forward; leave it alone
        return False
    size = module.output_size
    sizes = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    return sizes == (1, 1)


def _has_hooks(module: nn.Module) -> bool:
    # Hooks live on the module object; a swapped-out module would silently stop calling them.
    return any(
        getattr(module, attribute, None)
        for attribute in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    )


def global_average_pools(network: nn.Module, keep: Iterable[nn.Module] = ()) -> list[tuple[nn.Module, str, nn.Module]]:
    """The global ``nn.AdaptiveAvgPool2d`` modules of a network that :func:`broadcast_pooling` swaps.

    Args:
        network: the model to search.
        keep: modules never to report, e.g. the layer a CAM is recorded at.

    Returns:
        ``(parent, name, pool)`` for each place a pool is registered as a child
        (a module shared by several parents appears once per parent). Pools
        carrying hooks and ``network`` itself are left out: swapping them
        would lose the hooks, or has no parent to swap in.
    """
    kept = {id(module) for module in keep}
    places: list[tuple[nn.Module, str, nn.Module]] = []
    seen: set[int] = set()
    stack = [network]
    while stack:  # one plain walk: this runs on every CAM call, so named_modules' bookkeeping is avoided
        parent = stack.pop()
        if id(parent) in seen:
            continue
        seen.add(id(parent))
        for name, child in parent._modules.items():
            if child is None:
                continue
            stack.append(child)
            # TorchScript and traced modules hold script modules, never an nn.AdaptiveAvgPool2d, so they are left alone.
            if _is_global_average_pool(child) and id(child) not in kept and not _has_hooks(child):
                places.append((parent, name, child))
    return places


@contextlib.contextmanager
def broadcast_pooling(network: nn.Module, keep: Iterable[nn.Module] = ()) -> Iterator[int]:
    """Swap global ``nn.AdaptiveAvgPool2d`` modules for ``GlobalAveragePool`` for the duration.

    Both return (N, C, 1, 1) (or (C, 1, 1) for an unbatched input) and the
    same values up to float rounding, so code such as torchvision's
    ``torch.flatten(self.avgpool(x), 1)`` works unchanged; only the backward
    pass differs: a broadcast view instead of a full gradient per class.
    Networks without such a module (the project's own models already use
    ``GlobalAveragePool``; pooling written as ``x.mean((2, 3))`` in
    ``forward`` cannot be swapped) are left as they are. The network is
    changed in place while the block runs, so do not use it from another
    thread meanwhile.

    Example::

        network = torchvision.models.resnet50()
        with broadcast_pooling(network) as swapped:  # swapped == 1: its avgpool
            result = grad_cam(network, inputs, range(1000))

    Args:
        network: the model; its modules are restored when the block ends,
            also when the block raises.
        keep: modules not to swap, e.g. the layer being explained, whose
            recording hooks would otherwise no longer run. Pools that carry
            hooks are never swapped.

    Yields:
        In how many places a pool was swapped (0 when there was nothing to swap).
    """
    places = global_average_pools(network, keep)
    for parent, name, original in places:
        parent._modules[name] = GlobalAveragePool().train(original.training)
    try:
        yield len(places)
    finally:
        for parent, name, original in places:
            parent._modules[name] = original
