"""Where each cell of a layer sits on the input: receptive-field centres, and maps placed there.

A layer's cell (i, j) is computed from a window of the input, its receptive
field. Its **centre** here is the midpoint of that window along each axis, in
input pixel coordinates where pixel k's centre is at k: the midpoint of all
the input positions the cell is connected to, padding positions counted as
positions (as if the input went on beyond its border). For a chain of
convolutions and poolings it is (Araujo et al., "Computing receptive fields
of convolutional neural networks", Distill, 2019)::

    centre(u) = offset + stride * u,   offset = sum over layers l of
                stride_before_l * (dilation_l * (kernel_l - 1) / 2 - padding_before_l)

Two ways give it:

* :func:`derive_cell_centres` reads every convolution, pooling and padding
  between the input and the layer from the autograd graph of one forward
  pass, with the paddings actually used at this input size. That includes
  TensorFlow-style "same" padding, computed per input by ``F.pad``. The
  bundled EfficientNet-Lite0 pads a stride-2 convolution on an even side
  one pixel less before than after (0 and 1 for a 3 x 3 kernel, 1 and 2
  for 5 x 5), which moves every later cell by the stride it had before
  that convolution: at a side that is a multiple of 32 its ``layer4`` cell
  u is centred at input pixel 32u + 31. ResNet50's symmetric padding
  centres it at 32u. Upsampling with ``align_corners=False`` draws both at
  32u + 15.5.
* :func:`measure_cell_centres` measures it, with no knowledge of the
  layers: on a copy of the network made linear and positive (see there), a
  cell's dependence on the input is a kernel symmetric about the midpoint of
  its receptive field, so its centroid is the centre, and two batched
  forward passes of the copy (one per axis) give every cell's centroid.

:func:`cell_centres` (cached per network, layer and input size) derives by
default: it is exact, needs one forward pass of the network itself and no
copy, and the cache makes every later CAM call at that size a dictionary
look-up. It measures only for networks whose graph holds an operation the
derivation does not know (an upsampling, a reshape); the tests check that
both agree on the course's networks.

:func:`place_maps` then upsamples (K, h, w) maps so that each cell's value
sits at its centre, mapped through the preprocessing's resize onto the
photo.
"""

from __future__ import annotations

import contextlib
import copy
import math
import weakref
from typing import Iterator, Literal, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from .hooks import LayerSpec, resolve_layers

__all__ = [
    "CellCentres",
    "NotDerivableError",
    "cell_centres",
    "centres_on_image",
    "derive_cell_centres",
    "measure_cell_centres",
    "place_maps",
    "placement_matrix",
    "stretched_centres",
]

How = Literal["auto", "derived", "measured"]


class NotDerivableError(ValueError):
    """The network's graph holds an operation whose geometry :func:`derive_cell_centres` does not know."""


class CellCentres(NamedTuple):
    """The receptive-field centre of every cell of one layer, for one input size.

    Attributes:
        rows: (h,) float64, the centre of each row of cells, in input pixels
            (pixel k's centre is at k); read-only.
        columns: (w,) float64, the centre of each column of cells; read-only.
        stride: (row, column) distance between neighbouring cells, in input pixels.
        input_size: (H, W) of the network input they belong to.
        layer: the layer's name.
        how: ``"derived"`` or ``"measured"``.
    """

    rows: np.ndarray
    columns: np.ndarray
    stride: tuple[float, float]
    input_size: tuple[int, int]
    layer: str
    how: str


# --------------------------------------------------------------------------- common


@contextlib.contextmanager
def _eval_mode(network: nn.Module) -> Iterator[None]:
    """Eval mode for the duration (batch norm must not update its statistics), restored afterwards."""
    training = [module for module in network.modules() if module.training]
    for module in training:
        module.training = False
    try:
        yield
    finally:
        for module in training:
            module.training = True


def _size(input_size: Sequence[int]) -> tuple[int, int]:
    size = tuple(int(side) for side in input_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"input_size must be (height, width) of the network input, two positive ints; got {input_size!r}.")
    return size  # type: ignore[return-value]


def _layer(network: nn.Module, layer: LayerSpec) -> tuple[str, nn.Module]:
    ((name, module),) = resolve_layers(network, layer).items()
    return name, module


def _frozen(values: np.ndarray) -> np.ndarray:
    values = np.ascontiguousarray(values, dtype=np.float64)
    values.setflags(write=False)  # cached and shared: nobody may change them
    return values


def _not_spatial(name: str, shape: tuple[int, ...], size: tuple[int, int]) -> ValueError:
    return ValueError(
        f"Layer {name!r} outputs shape {shape} for a {size[0]} x {size[1]} input, not a spatial map (1, C, h, w) "
        "with more than one cell, so its cells have no places to put them. Use a convolutional layer before the "
        "global pooling (layer1 .. layer4), or a larger input: one that is smaller than a cell of the layer in both "
        "directions gives a single cell."
    )


def _network_input(network: nn.Module, size: tuple[int, int], dtype: torch.dtype | None = None) -> torch.Tensor:
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = dtype or (parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32)
    return torch.zeros(1, 3, *size, device=device, dtype=dtype)


# --------------------------------------------------------------------------- derivation

_GLOBAL = "global"  # a tensor that depends on the whole input (after a global pooling): it has no place

#: Autograd nodes that change no positions: element-wise operations and normalisations.
_POINTWISE = (
    "Relu", "Hardtanh", "Threshold", "LeakyRelu", "Elu", "Gelu", "Silu", "Mish", "Hardswish", "Hardsigmoid",
    "Sigmoid", "Tanh", "Softplus", "NativeBatchNorm", "CudnnBatchNorm", "MiopenBatchNorm", "NativeGroupNorm",
    "Add", "Sub", "Mul", "Div", "Neg", "Clamp", "Pow", "Abs", "Exp", "Sqrt", "Rsqrt", "Clone", "ToCopy", "Alias",
    "Dropout", "NativeDropout", "Where",
)


def _op_name(node: object) -> str:
    name = type(node).__name__
    return name[: -len("Backward0")] if name.endswith("Backward0") else name.rstrip("0123456789").removesuffix("Backward")


def _pair(values: Sequence[int], default: int) -> tuple[int, int]:
    values = tuple(values) or (default,)
    return (values[0], values[-1]) if len(values) in (1, 2) else (values[-2], values[-1])


def _node_geometry(node: object, inputs: list[object], source: torch.Tensor) -> object:
    """(row offset, row stride, column offset, column stride) of a node's output, from its inputs' geometries."""
    name = _op_name(node)
    if name == "AccumulateGrad":
        return (0.0, 1.0, 0.0, 1.0) if node.variable is source else None  # type: ignore[attr-defined]
    grids = [geometry for geometry in inputs if isinstance(geometry, tuple)]
    if name in ("Convolution", "MaxPool2DWithIndices", "AvgPool2D", "MaxPool2D"):
        if not grids:
            return inputs[0] if inputs else None
        offset_y, stride_y, offset_x, stride_x = inputs[0] if isinstance(inputs[0], tuple) else grids[0]
        if name == "Convolution":
            if node._saved_transposed:  # type: ignore[attr-defined]
                raise NotDerivableError("a transposed convolution (an upsampling)")
            kernel = tuple(node._saved_weight.shape[-2:])  # type: ignore[attr-defined]
            if len(node._saved_weight.shape) != 4:  # type: ignore[attr-defined]
                raise NotDerivableError("a convolution that is not 2-D")
            dilation = _pair(node._saved_dilation, 1)  # type: ignore[attr-defined]
        else:
            kernel = _pair(node._saved_kernel_size, 1)  # type: ignore[attr-defined]
            dilation = _pair(getattr(node, "_saved_dilation", ()), 1)
        stride = _pair(node._saved_stride, 0) if tuple(node._saved_stride) else kernel  # type: ignore[attr-defined]
        padding = _pair(node._saved_padding, 0)  # type: ignore[attr-defined]
        return (
            offset_y + stride_y * (dilation[0] * (kernel[0] - 1) / 2 - padding[0]),
            stride_y * stride[0],
            offset_x + stride_x * (dilation[1] * (kernel[1] - 1) / 2 - padding[1]),
            stride_x * stride[1],
        )
    if name == "ConstantPadNd":
        if not grids:
            return inputs[0] if inputs else None
        offset_y, stride_y, offset_x, stride_x = grids[0]
        pad = list(node._saved_pad) + [0, 0, 0, 0]  # type: ignore[attr-defined]
        # F.pad lists the last axis first: (left, right, top, bottom); a negative pad crops.
        return (offset_y - stride_y * pad[2], stride_y, offset_x - stride_x * pad[0], stride_x)
    if name in ("Mean", "Sum") and grids:
        dims = {d % 4 for d in node._saved_dim} if hasattr(node, "_saved_dim") else {2, 3}  # type: ignore[attr-defined]
        if len(node._saved_self_sym_sizes) == 4 and {2, 3} <= dims:  # type: ignore[attr-defined]
            return _GLOBAL
        if len(node._saved_self_sym_sizes) == 4 and not dims & {2, 3}:  # type: ignore[attr-defined]
            return grids[0]  # a mean over channels keeps the positions
        raise NotDerivableError(f"a {name.lower()} over some spatial axes")
    if name in _POINTWISE:
        if not grids:
            return _GLOBAL if _GLOBAL in inputs else None
        if any(grid != grids[0] for grid in grids[1:]):
            raise NotDerivableError(f"a {name} that combines cells whose centres differ: {grids}")
        # A (N, C, 1, 1) input that is broadcast (squeeze-and-excitation) has no place; the grid's cells keep theirs.
        return grids[0]
    if not grids and _GLOBAL not in inputs:
        return None  # a constant: no input pixel flows through it
    raise NotDerivableError(f"the operation {type(node).__name__}")


def derive_cell_centres(network: nn.Module, layer: LayerSpec, input_size: Sequence[int]) -> CellCentres:
    """The centre of every cell of ``layer``, derived from the strides, kernels and paddings in front of it.

    One forward pass of a zero input of ``input_size`` (with a gradient, in
    eval mode, restored afterwards) records the autograd graph; walking it
    backwards from the layer's output composes each convolution's, pooling's
    and padding's geometry with the formula in the module's docstring. The
    paddings are those used at this size, so TensorFlow-style "same"
    padding (``F.pad`` before the convolution) is included. Branches that
    are added (residual connections) must agree; a branch pooled to one
    value (squeeze-and-excitation) is ignored, as it has no place.

    Args:
        network: the classifier (a bare ``nn.Module``).
        layer: the layer, by name or as a module; its last call counts.
        input_size: (H, W) of the network input.

    Returns:
        The centres, ``how="derived"``.

    Raises:
        NotDerivableError: an operation between input and layer whose
            geometry is not known here (transposed convolution, upsampling,
            reshape); :func:`measure_cell_centres` works there.
        ValueError: the layer's output is not a spatial map, or the network
            fails on an input of this size.
    """
    size = _size(input_size)
    name, module = _layer(network, layer)
    outputs: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _module, _args, output: outputs.append(output))
    source = _network_input(network, size).requires_grad_(True)
    try:
        with _eval_mode(network), torch.inference_mode(False), torch.enable_grad():
            network(source)
    except RuntimeError as error:
        raise ValueError(f"The network fails on a {size[0]} x {size[1]} input ({error}); use a larger input.") from None
    finally:
        handle.remove()
    if not outputs or not isinstance(outputs[-1], torch.Tensor):
        raise ValueError(f"Layer {name!r} was not called with a tensor output in the forward pass, so it has no cells.")
    output = outputs[-1]
    shape = tuple(output.shape)
    if output.ndim != 4 or shape[-2] * shape[-1] <= 1:
        raise _not_spatial(name, shape, size)
    if output.grad_fn is None:
        raise ValueError(f"Layer {name!r}'s output does not depend on the input, so its cells have no receptive field.")
    geometry = _walk(output.grad_fn, source)
    if not isinstance(geometry, tuple):
        raise NotDerivableError(f"layer {name!r}'s output has no place on the input (it is pooled over it)")
    offset_y, stride_y, offset_x, stride_x = geometry
    return CellCentres(
        rows=_frozen(offset_y + stride_y * np.arange(shape[-2])),
        columns=_frozen(offset_x + stride_x * np.arange(shape[-1])),
        stride=(float(stride_y), float(stride_x)),
        input_size=size,
        layer=name,
        how="derived",
    )


def _walk(root: object, source: torch.Tensor) -> object:
    """Geometry of ``root``'s output: an iterative post-order walk of the graph (ResNet's is too deep to recurse)."""
    done: dict[int, object] = {}
    keep: list[object] = []  # holding the nodes keeps their ids unique while they are keys
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        parents = [parent for parent, _ in getattr(node, "next_functions", ()) if parent is not None]
        if not expanded:
            stack.append((node, True))
            stack.extend((parent, False) for parent in parents if id(parent) not in done)
            continue
        inputs = [done[id(parent)] for parent in parents]
        try:
            done[id(node)] = _node_geometry(node, inputs, source)
        except (AttributeError, TypeError, IndexError) as error:  # a node that saves other attributes than expected
            raise NotDerivableError(f"the operation {type(node).__name__} ({error})") from None
        keep.append(node)
    return done[id(root)]


# --------------------------------------------------------------------------- measurement


def _linear_positive_copy(network: nn.Module) -> nn.Module:
    """A float64 copy whose every path is linear, positive and one channel wide.

    Every convolution keeps its kernel size, stride, dilation and padding
    (and its own forward, so TF-style padding computed per input stays) but
    gets one input and one output channel, a weight of 1/(kernel area) at
    every tap and no bias; a pre-hook averages its input's channels into
    one. Batch and group norms, activations and dropout become the identity;
    max pooling becomes average pooling with the same window (zero padding
    counted, as a convolution's is). A cell's output is then a positive
    weighted sum of input pixels whose weights are a convolution of
    symmetric boxes: symmetric about the receptive field's midpoint.
    """
    # The weights are replaced below, so the copy shares empty stand-ins for them rather than copying them.
    stand_ins = {id(tensor): nn.Parameter(torch.empty(0), requires_grad=False) for tensor in (*network.parameters(), *network.buffers())}
    twin = copy.deepcopy(network, memo=stand_ins).to(device="cpu", dtype=torch.float64)
    for parent in list(twin.modules()):
        for child_name, child in list(parent.named_children()):
            replacement: nn.Module | None = None
            if isinstance(child, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.Dropout, nn.Dropout2d)):
                replacement = nn.Identity()
            elif type(child).__module__ == "torch.nn.modules.activation" and not isinstance(child, (nn.MultiheadAttention, nn.Softmax)):
                replacement = nn.Identity()
            elif type(child) is nn.MaxPool2d:
                if child.dilation not in (1, (1, 1)):
                    raise ValueError("a dilated max pooling has no average-pooling twin")
                replacement = nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode, count_include_pad=True)
            elif type(child).__module__ == "efficientnet_lite_pytorch.utils" and type(child).__name__ in ("Swish", "MemoryEfficientSwish"):
                replacement = nn.Identity()
            if replacement is not None:
                setattr(parent, child_name, replacement)
    for module in twin.modules():
        if isinstance(module, nn.Conv2d):
            kernel_height, kernel_width = module.kernel_size
            module.weight = nn.Parameter(
                torch.full((1, 1, kernel_height, kernel_width), 1.0 / (kernel_height * kernel_width), dtype=torch.float64),
                requires_grad=False,
            )
            module.bias = None
            module.groups, module.in_channels, module.out_channels = 1, 1, 1
            module.register_forward_pre_hook(lambda _module, args: (args[0].mean(dim=1, keepdim=True), *args[1:]))
    return twin.eval().requires_grad_(False)


class _Reached(Exception):
    """Raised by a hook to end a forward pass at the layer: nothing after it is needed."""


def _run_to_layer(twin: nn.Module, name: str, inputs: torch.Tensor) -> torch.Tensor:
    outputs: list[torch.Tensor] = []

    def reached(_module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
        outputs.append(output)
        raise _Reached

    # The copy's layers after this one have empty stand-ins for weights: the pass must end here.
    handle = twin.get_submodule(name).register_forward_hook(reached)
    try:
        with torch.no_grad():
            twin(inputs)
    except _Reached:
        pass
    finally:
        handle.remove()
    if not outputs:
        raise ValueError(f"Layer {name!r} was not called in the forward pass.")
    return outputs[-1].sum(dim=1)  # (N, h, w): channels of one cell are positive combinations of one kernel


def measure_cell_centres(network: nn.Module, layer: LayerSpec, input_size: Sequence[int], margin: int = 256) -> CellCentres:
    """The centre of every cell of ``layer``, measured as the centroid of its dependence on the input.

    On the linear, positive copy described in :func:`_linear_positive_copy`,
    cell (i, j) is ``sum over pixels of k_ij(y, x) * input(y, x)`` with
    ``k_ij >= 0`` symmetric about its receptive field's midpoint, so the
    centroid of ``k_ij`` is the centre, and ``f(y-coordinates) / f(ones)``
    is that centroid for every cell in one pass (one per axis). To keep
    borders from cutting receptive fields (which would pull centroids
    inwards) the input is enlarged along the axis by ``margin`` pixels on
    both sides, a whole number of the layer's strides, so that the cells
    keep their geometry (the same paddings, TF-style ones too, since the
    side grows by a multiple of twice each convolution's stride) and the
    original cells are a block of the enlarged grid; the margin doubles
    until no original cell reaches the enlarged border. In the same batch,
    ``f(x) + f(-x) = 0`` for a random x checks that the copy is linear.

    Slower than :func:`derive_cell_centres` (a copy of the network and
    passes at the enlarged size) but blind to how the layers are built.

    Args:
        network: the classifier.
        layer: the layer, by name or as a module.
        input_size: (H, W) of the network input.
        margin: first margin tried, in pixels.

    Returns:
        The centres, ``how="measured"``.

    Raises:
        ValueError: the layer's output is not a spatial map; or the copy is
            not linear (a multiplication of two paths, such as
            squeeze-and-excitation, or an activation applied as a function),
            not one channel wide, or its cells are not a fixed stride apart.
    """
    size = _size(input_size)
    name, _ = _layer(network, layer)
    try:
        twin = _linear_positive_copy(network)
        base = _run_to_layer(twin, name, _network_input(twin, size, torch.float64))
    except (RuntimeError, ValueError, TypeError, AttributeError, IndexError) as error:
        # IndexError: a buffer used as an index (Swin's relative position table) has an empty stand-in in the copy.
        raise ValueError(f"Cannot measure the centres of {name!r}: no linear, positive copy of this network runs ({error}).") from None
    if base.ndim != 3 or base.shape[-2] * base.shape[-1] <= 1:
        raise _not_spatial(name, (1, 1, *base.shape[-2:]) if base.ndim == 3 else tuple(base.shape), size)
    cells = tuple(base.shape[-2:])
    try:
        rows = _measure_axis(twin, name, size, cells, 0, margin)
        columns = _measure_axis(twin, name, size, cells, 1, margin)
    except RuntimeError as error:
        raise ValueError(f"Cannot measure the centres of {name!r}: the linear copy fails on a larger input ({error}).") from None
    return CellCentres(
        rows=_frozen(rows),
        columns=_frozen(columns),
        stride=(_spacing(rows), _spacing(columns)),
        input_size=size,
        layer=name,
        how="measured",
    )


def _measure_axis(twin: nn.Module, name: str, size: tuple[int, int], cells: tuple[int, ...], axis: int, margin: int) -> np.ndarray:
    """The centres of the cells along one axis (0: rows, 1: columns), the input enlarged along that axis only.

    One axis at a time is enough: the copy's kernels are sums of products of
    symmetric boxes, one per axis and branch, so along this axis every
    cell's kernel is symmetric about its centre however the other axis is cut.
    """
    retried = False
    while True:
        enlarged = list(size)
        enlarged[axis] += 2 * margin
        length = enlarged[axis]
        # Coordinates from the original input's middle: signed, so that an activation the copy
        # still has (applied as a function) clips some cells and shows in the check below.
        middle = (size[axis] - 1) / 2 + margin
        shape = (1, length, 1) if axis == 0 else (1, 1, length)
        coordinate = (torch.arange(length, dtype=torch.float64) - middle).reshape(shape).expand(1, *enlarged)
        ones = torch.ones(1, *enlarged, dtype=torch.float64)
        ring = torch.zeros(1, *enlarged, dtype=torch.float64)
        ring.select(axis + 1, 0).fill_(1)
        ring.select(axis + 1, length - 1).fill_(1)
        noise = torch.randn(1, *enlarged, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        probes = torch.cat([ones, coordinate, ring, noise, -noise])[:, None].expand(-1, 3, -1, -1)
        response = _run_to_layer(twin, name, probes.contiguous())
        grown = response.shape[axis + 1] - cells[axis]
        stride = 2 * margin / grown if grown > 0 else math.nan
        if not (grown > 0 and grown % 2 == 0 and stride.is_integer() and margin % stride == 0):
            # The margin must be a whole number of cells on each side, or the grid would move.
            if retried or not grown > 0:
                raise ValueError(
                    f"Cannot measure the centres of {name!r}: {2 * margin} more input pixels give {grown} more cells, "
                    "not a whole number of cells on each side."
                )
            step = max(1, round(stride))
            margin, retried = step * math.ceil(margin / step), True
            continue
        response = response.narrow(axis + 1, grown // 2, cells[axis])
        if bool((response[2] > 0).any()):
            margin *= 2  # some original cell still reaches the enlarged border: its field would be cut
            if margin > 1 << 14:
                raise ValueError(f"Cannot measure the centres of {name!r}: its receptive fields seem unbounded.")
            continue
        break
    weight, moment, _, noise_response, negated_response = response
    # Linear: f(-x) = -f(x). A ReLU left in the copy would give f(x) + f(-x) = f(|x|) instead.
    scale = float(noise_response.abs().max()) + float(negated_response.abs().max()) + 1e-300
    if not bool((weight > 0).all()) or float((noise_response + negated_response).abs().max()) > 1e-9 * scale:
        raise ValueError(
            f"Cannot measure the centres of {name!r}: the network's copy made linear is not linear (an activation "
            "applied as a function, or a product of two paths such as squeeze-and-excitation)."
        )
    centres = moment / weight + middle - margin
    # Cells of one row share its centre (and of one column).
    centres = centres if axis == 0 else centres.T
    spread = float((centres - centres[:, :1]).abs().max())
    if spread > 1e-6:
        raise ValueError(f"Cannot measure the centres of {name!r}: cells in line have centres {spread:.3g} pixels apart.")
    return centres[:, 0].numpy()


def _spacing(centres: np.ndarray) -> float:
    return float(np.diff(centres).mean()) if len(centres) > 1 else math.nan


# --------------------------------------------------------------------------- cache


_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, tuple[int, int], str], CellCentres]]" = weakref.WeakKeyDictionary()


def cell_centres(network: nn.Module, layer: LayerSpec, input_size: Sequence[int], how: How = "auto") -> CellCentres:
    """The receptive-field centre of every cell of ``layer`` at ``input_size``; cached.

    Args:
        network: the classifier, or a :class:`~utilities.models.LoadedModel`.
        layer: the layer, by name or as a module.
        input_size: (H, W) of the network input (``model.to_input(photo).shape[-2:]``).
        how: ``"derived"`` (:func:`derive_cell_centres`), ``"measured"``
            (:func:`measure_cell_centres`), or ``"auto"``: derived, and
            measured only where the derivation meets an operation it does
            not know. Deriving is the default because it is exact and costs
            one forward pass (about as much as the CAM's own), once per
            network, layer and size; measuring costs a copy of the network.

    Returns:
        The centres. The cache keeps them per network (as long as it lives),
        layer, size and ``how``; a network changed after a call keeps its
        old answer: call :func:`cell_centres.cache_clear`.

    Raises:
        ValueError: the layer's output is not a spatial map with more than
            one cell (a pooled or linear layer; an input smaller than one
            cell), the network fails at this size, or neither way works.
    """
    if not isinstance(network, nn.Module):
        network = network.network  # a LoadedModel (a module with a .network attribute, e.g. SelectOutput, is not one)
    size = _size(input_size)
    per_network = _CACHE.setdefault(network, {})
    if isinstance(layer, str) and (layer, size, how) in per_network:
        return per_network[(layer, size, how)]  # every CAM call comes here: no walk over the modules
    name, _ = _layer(network, layer)
    if how not in ("auto", "derived", "measured"):
        raise ValueError(f"how must be 'auto', 'derived' or 'measured', got {how!r}.")
    key = (name, size, how)
    if key not in per_network:
        if how == "measured":
            per_network[key] = measure_cell_centres(network, name, size)
        elif how == "derived":
            per_network[key] = derive_cell_centres(network, name, size)
        else:
            try:
                per_network[key] = derive_cell_centres(network, name, size)
            except NotDerivableError:
                per_network[key] = measure_cell_centres(network, name, size)
    return per_network[key]


cell_centres.cache_clear = _CACHE.clear  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- placing maps


def stretched_centres(cells: int, length: int) -> np.ndarray:
    """Where bilinear upsampling with ``align_corners=False`` draws ``cells`` cells over ``length`` pixels.

    Cell u lands at ``(u + 0.5) * length / cells - 0.5``: the cells are
    spread evenly, each in the middle of an equal share of the side.
    """
    return (np.arange(cells) + 0.5) * length / cells - 0.5


def centres_on_image(centres: CellCentres, image_size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The cells' centres in the pixels of the photo the network input was resized from.

    The preprocessing of :func:`~utilities.models.make_preprocess` resizes
    the whole photo to the input (no crop), pixel centres aligned, so input
    position u is photo position ``(u + 0.5) * H / h - 0.5``.

    Args:
        centres: from :func:`cell_centres`.
        image_size: (H, W) of the photo.

    Returns:
        (rows, columns) in photo pixels; draw cell (i, j) at ``(columns[j], rows[i])``.
    """
    height, width = _size(image_size)
    input_height, input_width = centres.input_size
    return (
        (centres.rows + 0.5) * height / input_height - 0.5,
        (centres.columns + 0.5) * width / input_width - 0.5,
    )


def placement_matrix(centres: np.ndarray, input_length: int, length: int) -> torch.Tensor:
    """(length, cells) weights that sample cells centred at ``centres`` for each output pixel, bilinearly.

    Output pixel y is at input position ``u = (y + 0.5) * input_length /
    length - 0.5``; its fractional cell index is u's place among the
    centres (``(u - centres[0]) / stride`` when they are a stride apart),
    clamped to the first and last cell, and it takes the two neighbouring
    cells' values in proportion.
    """
    positions = (np.arange(length) + 0.5) * input_length / length - 0.5
    index = np.interp(positions, centres, np.arange(len(centres), dtype=np.float64))
    lower = np.floor(index).astype(np.int64)
    upper = np.minimum(lower + 1, len(centres) - 1)
    fraction = index - lower
    matrix = np.zeros((length, len(centres)))
    np.add.at(matrix, (np.arange(length), lower), 1 - fraction)
    np.add.at(matrix, (np.arange(length), upper), fraction)
    return torch.from_numpy(matrix)


def place_maps(maps: torch.Tensor, centres: CellCentres, size: Sequence[int]) -> torch.Tensor:
    """Upsample (K, h, w) maps to (K, H, W) with every cell's value at its receptive-field centre.

    Bilinear between neighbouring centres, constant beyond the outermost
    ones. ``size`` is the photo's (or the input's) size; the input is taken
    to be the whole photo resized (see :func:`centres_on_image`).

    Raises:
        ValueError: the maps' (h, w) is not the number of cells in ``centres``.
    """
    height, width = _size(size)
    if tuple(maps.shape[-2:]) != (len(centres.rows), len(centres.columns)):
        raise ValueError(
            f"The maps have {tuple(maps.shape[-2:])} cells but the centres are for {len(centres.rows)} x "
            f"{len(centres.columns)} cells of {centres.layer!r} at a {centres.input_size} input: compute the centres "
            "for the layer and the input size the maps come from."
        )
    dtype = maps.dtype if maps.is_floating_point() else torch.float32
    along_rows = placement_matrix(centres.rows, centres.input_size[0], height).to(maps.device, dtype)
    along_columns = placement_matrix(centres.columns, centres.input_size[1], width).to(maps.device, dtype)
    return torch.einsum("yi,...ij,xj->...yx", along_rows, maps.to(dtype), along_columns)
