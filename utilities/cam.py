"""Class activation maps from one forward pass, for one or many classes.

CAM methods differ only in how they turn a layer's activations A (C, h, w)
and the gradients G (K, C, h, w) of K class scores into K maps. The shared
work (forward pass, recording, batched gradients, upsampling, normalising)
lives in :class:`CAMMethod`; a method is a subclass with one
:meth:`~CAMMethod.combine` method, like :class:`GradCAM`. The methods that
need no gradients (Score-CAM, Eigen-CAM) implement
:meth:`~CAMMethod.maps_without_gradients` instead.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import ClassVar, Iterator, Literal, NamedTuple, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .classes import IMAGENET_CLASS_NAMES, check_class_names, class_index, default_class_names
from .hooks import LayerRecorder, LayerSpec, resolve_layers
from .images import ImageLike, load_image
from .models import LoadedModel, logits_problem
from .pooling import broadcast_pooling
from .receptive_field import CellCentres, cell_centres, place_maps
from .tokens import SpatialLayout, spatial_layout, to_spatial

__all__ = [
    "PLACEMENTS",
    "CamResult",
    "CAMMethod",
    "GradCAM",
    "MapsTooLargeError",
    "find_target_layer",
    "grad_cam",
    "normalize_cams",
    "upsample_cams",
]

Target = Union[int, str]

#: How maps reach the photo's size: ``"centres"`` puts each cell's value at its
#: receptive-field centre (:func:`utilities.receptive_field.place_maps`);
#: ``"stretch"`` spreads the cells evenly over the photo (bilinear,
#: ``align_corners=False``), as before.
Placement = Literal["centres", "stretch"]
PLACEMENTS = ("centres", "stretch")

#: Largest gradient batch, in bytes, that one backward pass may produce.
GRADIENT_CHUNK_BYTES = 4 * 2**20


class MapsTooLargeError(MemoryError):
    """:attr:`CamResult.maps` would need more memory than :attr:`CamResult.maps_limit_bytes`."""


def _megabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"


@dataclass(frozen=True)
class CamResult:
    """Class activation maps of one image for K classes.

    Attributes:
        raw: (K, h, w) maps at the layer's resolution, after the ReLU, not normalised.
        class_indices: the K class indices.
        class_names: the K class names.
        scores: (K,) the classes' logits.
        probabilities: (K,) the classes' softmax probabilities.
        layer: name of the layer the maps come from.
        method: name of the CAM method.
        image_size: (H, W) that :attr:`maps` are upsampled to.
        model_class_names: all the model's class names, by class index, for
            :meth:`map_for` (empty: ImageNet's).
        centres: the receptive-field centres of the layer's cells at the
            network input's size; :attr:`maps` put each cell's value there.
            ``None``: the maps are stretched evenly over the image
            (``placement="stretch"``, or a network whose centres could not be found).
    """

    raw: torch.Tensor
    class_indices: list[int]
    class_names: list[str]
    scores: torch.Tensor
    probabilities: torch.Tensor
    layer: str
    method: str
    image_size: tuple[int, int]
    model_class_names: tuple[str, ...] = field(default=(), repr=False, compare=False)
    centres: CellCentres | None = field(default=None, repr=False, compare=False)

    #: The largest :attr:`maps`, in bytes, that is computed; beyond it, a
    #: :class:`MapsTooLargeError` that says what to do instead. 500 MB (all
    #: 1000 classes of a 224 x 448 input take 401 MB): computing them takes
    #: twice that for a moment, half of the 2 GB a class server typically gives
    #: a learner. A setting: ``CamResult.maps_limit_bytes = 4 * 10**9``.
    maps_limit_bytes: ClassVar[int] = 500 * 10**6

    def __len__(self) -> int:
        return len(self.class_indices)

    @cached_property
    def maps(self) -> torch.Tensor:
        """(K, H, W) maps upsampled to :attr:`image_size` and normalised to [0, 1].

        Each cell's value sits at its receptive-field centre when
        :attr:`centres` is set (see :func:`upsample_cams`). Computed on first use: for all 1000 classes this is far more work (and
        memory) than the CAMs themselves; :meth:`map_for` upsamples just one.

        Raises:
            MapsTooLargeError: the maps would take more than
                :attr:`maps_limit_bytes` (1000 classes of a 12-megapixel photo
                would take 48 GB); the message gives the size and the ways out.
        """
        height, width = self.image_size
        needed = len(self) * height * width * self.raw.element_size()
        if needed > self.maps_limit_bytes:
            raise MapsTooLargeError(
                f"The maps of {len(self)} classes at {height}x{width} pixels would take {_megabytes(needed)} "
                f"(limit: CamResult.maps_limit_bytes = {_megabytes(self.maps_limit_bytes)}). Instead: "
                "result.map_for('class name') upsamples one class; result.select(positions) keeps a few, e.g. "
                "result.select(result.probabilities.topk(5).indices).maps; a smaller output_size=(h, w) in the call "
                "that made the result gives smaller maps; result.raw holds all of them at the layer's resolution. "
                "Or raise the limit: CamResult.maps_limit_bytes = ... (bytes)."
            )
        return normalize_cams(upsample_cams(self.raw, self.image_size, self.centres))

    def select(self, positions: Sequence[int] | torch.Tensor) -> "CamResult":
        """A result holding only some of the classes, by position in this result.

        Example: the 10 most probable of all 1000 classes::

            everything = grad_cam(model, image, range(1000))
            best = everything.select(everything.probabilities.topk(10).indices)
        """
        positions = [int(p) for p in positions]
        return CamResult(
            raw=self.raw[positions],
            class_indices=[self.class_indices[p] for p in positions],
            class_names=[self.class_names[p] for p in positions],
            scores=self.scores[positions],
            probabilities=self.probabilities[positions],
            layer=self.layer,
            method=self.method,
            image_size=self.image_size,
            model_class_names=self.model_class_names,
            centres=self.centres,
        )

    def map_for(self, target: Target, class_names: Sequence[str] | None = None) -> torch.Tensor:
        """The (H, W) upsampled, normalised map of one class, given by name or class index.

        Names are looked up in ``class_names``, by default the model's own
        (:attr:`model_class_names`, or ImageNet's when that is empty).
        """
        index = class_index(target, class_names or self.model_class_names or IMAGENET_CLASS_NAMES)
        if index not in self.class_indices:
            shown = ", ".join(self.class_names[:10]) + (", ..." if len(self) > 10 else "")
            raise KeyError(f"No map for class {target!r}; this result holds {shown}.")
        position = self.class_indices.index(index)
        if "maps" in self.__dict__:
            return self.maps[position]
        return normalize_cams(upsample_cams(self.raw[position : position + 1], self.image_size, self.centres))[0]


def normalize_cams(cams: torch.Tensor) -> torch.Tensor:
    """Scale each map (the last two dimensions) to [0, 1] by its own minimum and maximum.

    A constant map has no range to scale: an all-zero map stays zero, and a
    constant positive map becomes all ones. The result is never NaN: maps
    with NaN or infinite values are refused, because no scaling of them is
    right (replacing the values would hide a broken input or network).

    Args:
        cams: (..., H, W) maps.

    Returns:
        Maps of the same shape in [0, 1].

    Raises:
        ValueError: a map holds NaN or infinite values.
    """
    if not cams.is_floating_point():
        cams = cams.float()
    finite = torch.isfinite(cams)
    if not bool(finite.all()):
        raise ValueError(_non_finite_message(cams, finite, "The maps given to normalize_cams"))
    flat = cams.flatten(-2)
    low = flat.amin(dim=-1, keepdim=True).unsqueeze(-1)
    high = flat.amax(dim=-1, keepdim=True).unsqueeze(-1)
    spread = high - low
    scaled = (cams - low) / torch.where(spread > 0, spread, torch.ones_like(spread))
    return torch.where(spread > 0, scaled, (high > 0).to(cams.dtype).expand_as(cams))


def _non_finite_message(cams: torch.Tensor, finite: torch.Tensor, what: str) -> str:
    bad = ~finite
    count = int(bad.sum())
    kinds = " and ".join(kind for kind, present in (("NaN", bool(cams.isnan().any())), ("infinite", bool(cams.isinf().any()))) if present)
    where = ""
    if cams.ndim >= 3:
        maps = bad.flatten(-2).any(-1).flatten().nonzero().flatten().tolist()
        where = f" in {len(maps)} of {bad.flatten(-2).any(-1).numel()} maps (first: map {maps[0]})"
    return (
        f"{what} hold {count} {kinds} values{where}, so they cannot be scaled to [0, 1]. They come from NaN or "
        "infinite activations or gradients: check the input for NaN, the network's weights, and use float32 "
        "rather than half precision, which overflows."
    )


def upsample_cams(cams: torch.Tensor, size: tuple[int, int], centres: CellCentres | None = None) -> torch.Tensor:
    """Bilinear upsampling of (K, h, w) maps to (K, H, W).

    Without ``centres`` the cells are spread evenly over the image, pixel
    centres aligned (``align_corners=False``): cell u lands at
    ``(u + 0.5) * H / h - 0.5``. That is where its receptive field is
    centred only for some networks and sizes, never exactly for the two
    course models: at a side that is a multiple of 32, ResNet50's
    ``layer4`` cell u is centred at input pixel 32u (symmetric padding), the
    bundled EfficientNet-Lite0's at 32u + 31 (TensorFlow-style padding adds
    its extra row below and right), against 32u + 15.5 drawn; at other sides
    the cells also cover more (or fewer) pixels than the side has.

    With ``centres`` (from :func:`utilities.receptive_field.cell_centres` for
    the layer and the network input's size) output pixel y takes the cell
    grid at fractional index ``(u - centres.rows[0]) / stride``, where
    ``u = (y + 0.5) * h_input / H - 0.5`` is y's place on the network input
    (the course's preprocessing resizes the whole photo, no crop), clamped
    to the first and last cell; see :func:`~utilities.receptive_field.place_maps`.

    Args:
        cams: (K, h, w) maps.
        size: (H, W) of the image to draw them on.
        centres: the cells' receptive-field centres, or ``None`` to stretch.

    Returns:
        (K, H, W) maps.
    """
    if centres is not None:
        return place_maps(cams, centres, size)
    return F.interpolate(cams.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False).squeeze(1)


@contextlib.contextmanager
def _evaluated_frozen(network: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters for the duration, restored afterwards.

    Frozen parameters keep autograd from building a graph before the recorded
    layer, which is what makes one CAM cost about one inference forward.
    """
    # Touch only what needs changing: the models of load_model are already
    # frozen and in eval mode. This runs on every call, so the walk is kept plain.
    training, trainable = [], []
    stack = [network]
    while stack:  # one plain walk; modules() and parameters() would each walk with names and a memo
        module = stack.pop()
        if module.training:
            training.append(module)
        trainable.extend(p for p in module._parameters.values() if p is not None and p.requires_grad)
        stack.extend(child for child in module._modules.values() if child is not None)
    for module in training:
        module.training = False
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)
        for module in training:
            module.training = True


def _has_submodule(network: nn.Module, name: str) -> bool:
    try:
        network.get_submodule(name)
    except AttributeError:
        return False
    return True


class _LayerOutput(NamedTuple):
    """What one module output in a probe forward pass (its last call, if called several times)."""

    name: str
    shape: tuple[int, ...]
    on_path: bool  # the logits depend on it
    layout: SpatialLayout | None  # its grid of cells, if it has one (tokens and channels-last included)
    cells_get_gradient: bool = True  # the top class's logit has a nonzero gradient on some cell

    @property
    def spatial(self) -> bool:
        return self.layout is not None and self.cells_get_gradient


def _layer_outputs(network: nn.Module, inputs: torch.Tensor) -> list[_LayerOutput]:
    """Every submodule's tensor output in one forward pass, in the order the modules finished.

    A module finishes after its children, so a stage (``layer4``) comes after
    its last block. Whether the logits depend on an output is read from the
    autograd graph, not guessed from module types: an output is on the path
    if its graph node is reachable backwards from the logits.
    """
    calls: list[tuple[str, tuple[int, ...], object, SpatialLayout | None]] = []
    tensors: dict[str, tuple[torch.Tensor, SpatialLayout]] = {}  # outputs laid out as tokens or channels last, for the gradient probe
    input_size = tuple(inputs.shape[-2:])

    def record(name: str, module: nn.Module, args: tuple, output: object) -> None:
        if isinstance(output, torch.Tensor):
            # The node as it is now: an in-place operation later gives the tensor a new one.
            layout = spatial_layout(tuple(output.shape), input_size)
            calls.append((name, tuple(output.shape), output.grad_fn, layout))
            if layout is not None and layout.kind != "nchw" and output.requires_grad:
                tensors[name] = (output, layout)

    handles = [module.register_forward_hook(partial(record, name)) for name, module in network.named_modules() if name]
    try:
        with torch.inference_mode(False), torch.enable_grad():
            # A gradient-requiring input builds the graph through every layer, frozen or not.
            logits = network(inputs.detach().clone().requires_grad_(True))
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(logits, torch.Tensor):  # a dict or a tuple: say so, not that no layer is spatial
        raise ValueError(logits_problem(logits, type(network).__name__))
    reachable: dict[int, object] = {}  # id -> node; holding the nodes keeps their ids unique
    stack = [logits.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in reachable:
            continue
        reachable[id(node)] = node
        stack.extend(next_node for next_node, _ in node.next_functions)
    last_call = {name: position for position, (name, *_) in enumerate(calls)}
    # A transformer's last norm feeds only the class token to the head: its patch tokens get no gradient, so no map.
    # One backward pass of the top class finds such layers.
    silent: set[str] = set()
    if tensors:
        gradients = torch.autograd.grad(logits[0].max(), [output for output, _ in tensors.values()], allow_unused=True)
        for (name, (_, layout)), gradient in zip(tensors.items(), gradients):
            if gradient is None or not bool(to_spatial(gradient, layout).any()):
                silent.add(name)
    return [
        _LayerOutput(name, shape, node is not None and id(node) in reachable, layout, name not in silent)
        for position, (name, shape, node, layout) in enumerate(calls)
        # A module called several times (a shared ReLU) is recorded at its last call, as LayerRecorder does.
        if last_call[name] == position
    ]


def _automatic_choice(outputs: list[_LayerOutput]) -> _LayerOutput | None:
    candidates = [output for output in outputs if output.spatial and output.on_path]
    return candidates[-1] if candidates else None


def _unreadable_after(outputs: list[_LayerOutput], chosen: _LayerOutput) -> list[_LayerOutput]:
    """Sequences (N, T, D) on the path after ``chosen`` that are not grids: a transformer whose tokens could not be
    read, after which a map at ``chosen`` (its patch embedding, say) would explain nothing."""
    later = outputs[outputs.index(chosen) + 1 :]
    return [output for output in later if output.on_path and len(output.shape) == 3 and output.shape[1] > 1
            and output.layout is None]


def _automatic_layer(network: nn.Module, inputs: torch.Tensor) -> _LayerOutput:
    """The automatic choice, or a ValueError that says why there is none and what to pass."""
    outputs = _layer_outputs(network, inputs)
    chosen = _automatic_choice(outputs)
    if chosen is None:
        raise ValueError(_no_spatial_layer_message(network, inputs))
    unreadable = _unreadable_after(outputs, chosen)
    if unreadable:
        raise ValueError(
            f"The last layer of {type(network).__name__} with a grid of cells that the logits depend on is "
            f"{chosen.name!r} {chosen.shape}, but after it the network works on sequences that are not grids of this "
            f"{inputs.shape[-2]} x {inputs.shape[-1]} input ({unreadable[-1].name!r}: {unreadable[-1].shape}), so a map "
            f"at {chosen.name!r} would explain little. Pass layer= a block whose output is laid out as tokens, one per "
            "patch (after up to 8 class or register tokens), with as many patches as the input has, or as (N, C, h, w)."
        )
    return chosen


def _no_spatial_layer_message(network: nn.Module, inputs: torch.Tensor) -> str:
    return (
        f"No layer of {type(network).__name__} outputs a grid of cells that the logits depend on, for an input of "
        f"{tuple(inputs.shape[-2:])} pixels: a spatial map (N, C, h, w with h*w > 1), channels last (N, h, w, C), or "
        "tokens (N, T, D) with one per patch after up to 8 class tokens; so there is nothing to explain. "
        "Use a larger image, or pass layer= a layer laid out like that."
    )


def find_target_layer(network: nn.Module, inputs: torch.Tensor) -> str:
    """The layer CAM methods explain when none is given and the network has no default.

    It is the last module, in the order modules finish, whose output is a
    spatial map (N, C, h, w with h*w > 1) and on the path to the output: the
    logits depend on it. One forward pass of ``inputs`` finds it, with a hook
    on every module (all removed afterwards). A stage finishes after its own
    last block, so the answer names the stage (``features``) rather than its
    last ReLU when both output the same map. A branch whose output the
    logits do not use (an auxiliary head) is never chosen, and neither is
    anything after the global pooling.

    Args:
        network: the classifier; run in eval mode with frozen parameters for
            the pass, then restored.
        inputs: a preprocessed batch of one (1, C, H, W).

    Returns:
        The dotted module name.

    Raises:
        ValueError: no module output is spatial and on the path to the output.
    """
    with _evaluated_frozen(network):
        return _automatic_layer(network, inputs).name


#: Networks whose cell centres could not be found, so that this is said once per network.
_UNPLACED: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()

#: The layer found for each network without a default, so that it is found,
#: and announced, once per network.
_AUTOMATIC_LAYERS: "weakref.WeakKeyDictionary[nn.Module, str]" = weakref.WeakKeyDictionary()


class CAMMethod:
    """Shared machinery of CAM methods: one base, one small subclass per method.

    Gradient methods implement :meth:`combine`; gradient-free ones set
    ``uses_gradients = False`` and implement :meth:`maps_without_gradients`.
    Calling an instance runs one forward
    pass with the layer recorded, then backpropagates the scores of all
    requested classes as batches of one-hot vectors (``is_grads_batched``), in
    chunks whose gradients take at most :data:`GRADIENT_CHUNK_BYTES`, so memory
    stays bounded however many classes are asked for.

    Without a layer, the method explains the model's default layer
    (:attr:`LoadedModel.target_layer <utilities.models.LoadedModel>`), else
    ``layer4`` if the network has one, else the layer that
    :func:`find_target_layer` finds on the first call: then one line on
    standard error says which, once per network, and :attr:`CamResult.layer`
    names it in every result.

    Args:
        model: a :class:`~utilities.models.LoadedModel`, or a bare ``nn.Module``.
        layer: the layer to explain, by name (``"layer4"``) or as a module;
            ``None`` for the default described above.
        chunk_size: classes per backward pass; by default as many as fit
            :data:`GRADIENT_CHUNK_BYTES`.
        class_names: the names of the network's outputs, in order; by default
            the model's own, and for a bare network ImageNet's if it has 1000
            outputs, else ``"class 0"`` .. ``"class N-1"``.

    Raises:
        TypeError: ``model`` is neither a LoadedModel nor an nn.Module.
        ValueError: a layer name the network does not have, or duplicate class names.
    """

    #: Name shown in results and figures.
    name = "CAM method"
    #: Whether the method backpropagates class scores (else it implements maps_without_gradients).
    uses_gradients = True

    def __init__(
        self,
        model: LoadedModel | nn.Module,
        layer: LayerSpec | None = None,
        chunk_size: int | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if isinstance(model, LoadedModel):
            self.network, self._model = model.network, model
            default_layer = model.target_layer
        elif isinstance(model, nn.Module):
            self.network, self._model = model, None
            default_layer = None
        else:
            raise TypeError(f"Expected a LoadedModel or an nn.Module, got {type(model).__name__}.")
        if class_names is not None:
            self._class_names: tuple[str, ...] | None = check_class_names(class_names)
            self._class_names_source = "class_names"
        else:
            self._class_names = model.class_names if isinstance(model, LoadedModel) else None
            self._class_names_source = f"{model.name}'s class_names" if isinstance(model, LoadedModel) else ""
        #: The output names; for a bare network without class_names, known after the first call.
        self.class_names: tuple[str, ...] | None = self._class_names
        if layer is None:
            if default_layer is not None:
                layer = default_layer
            elif _has_submodule(self.network, "layer4"):
                layer = "layer4"
        self.layer_name: str | None = None
        self.layer: nn.Module | None = None
        if layer is not None:
            ((self.layer_name, self.layer),) = resolve_layers(self.network, layer, hint=self._layer_hint()).items()
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}.")
        self.chunk_size = chunk_size

    def _layer_hint(self) -> str:
        """What to suggest for a layer name the network does not have."""
        if self._model is not None and self._model.target_layer is not None:
            return f"The default layer of {self._model.name} is {self._model.target_layer!r}: leave layer out (layer=None) to use it."
        if _has_submodule(self.network, "layer4"):
            return "Leave layer out (layer=None) to use 'layer4', or print(network) to see its layer names."
        return (
            "Leave layer out (layer=None) and the last layer with a spatial output is found for you, "
            "or print(network) to see its layer names."
        )

    def _choose_layer(self, inputs: torch.Tensor) -> None:
        """Find the layer for a network without a default, once per network, and say which."""
        name = _AUTOMATIC_LAYERS.get(self.network)
        if name is not None and not _has_submodule(self.network, name):
            name = None  # the network was changed since: find the layer again
        if name is None:
            chosen = _automatic_layer(self.network, inputs)
            name = chosen.name
            _AUTOMATIC_LAYERS[self.network] = name
            layout = chosen.layout
            channels = chosen.shape[1] if layout.kind == "nchw" else chosen.shape[-1]
            laid_out = {"nchw": "", "tokens": ", read as tokens on a grid", "nhwc": ", channels last"}[layout.kind]
            print(
                f"No layer given and {type(self.network).__name__} has no default, so CAMs explain {name!r} "
                f"({channels} channels, {layout.height} x {layout.width} here{laid_out}): the last layer with a "
                "spatial output that the logits depend on. Pass layer= to choose another.",
                file=sys.stderr,
            )
        self.layer_name, self.layer = name, self.network.get_submodule(name)

    def _names_for(self, logits: torch.Tensor) -> tuple[str, ...]:
        """The class names of the network's outputs, checked against their number."""
        count = logits.shape[-1]
        if self._class_names is None:
            names = default_class_names(count)
        else:
            names = self._class_names
            if len(names) != count:
                raise ValueError(
                    f"Got {len(names)} names in {self._class_names_source} but the network has {count} outputs; "
                    "pass one name per output, in the order of the outputs."
                )
        self.class_names = names
        return names

    def _inputs(self, image: ImageLike | torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The network input (1, C, h, w) and the size to upsample maps to."""
        parameter = next(self.network.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        if isinstance(image, torch.Tensor) and image.dtype.is_floating_point and image.ndim in (3, 4):
            inputs = image if image.ndim == 4 else image.unsqueeze(0)
            if inputs.shape[0] != 1:
                raise ValueError(f"A CAM explains one image; got a batch of {inputs.shape[0]}. Pass inputs[i:i+1].")
            expected = self._model.input_channels if self._model is not None else None
            if expected is not None and inputs.shape[1] != expected:
                raise ValueError(
                    f"Expected a preprocessed tensor (1, {expected}, H, W) for {self._model.name}, got shape {tuple(image.shape)}."
                )
            return inputs.detach().to(device), tuple(inputs.shape[-2:])
        if self._model is None:
            raise TypeError(
                "A bare nn.Module cannot preprocess images; pass a preprocessed tensor (1, C, H, W), or wrap the "
                "network with its preprocessing: LoadedModel.wrap(network, class_names, mean=..., std=..., input_size=...)."
            )
        pixels = load_image(image)
        return self._model.preprocess(pixels).unsqueeze(0).to(device), pixels.shape[:2]

    def _target_indices(self, targets: Target | Sequence[Target] | None, logits: torch.Tensor) -> list[int]:
        names = self._names_for(logits)
        if targets is None:
            return [int(logits.argmax())]
        if isinstance(targets, (str, int)) or not isinstance(targets, Sequence) and hasattr(targets, "__index__"):
            targets = [targets]
        indices = [class_index(target, names) for target in targets]
        if not indices:
            raise ValueError("No target classes given; pass a class name, an index, a list of them, or None for the top class.")
        return indices

    def _chunk_size(self, bytes_per_class: int) -> int:
        if self.chunk_size is not None:
            return self.chunk_size
        return max(1, GRADIENT_CHUNK_BYTES // max(1, bytes_per_class))

    def _not_spatial_message(self, shape: tuple[int, ...], inputs: torch.Tensor) -> str:
        """Why the layer has no CAM, and which layer has one."""
        outputs = _layer_outputs(self.network, inputs)
        shapes = {output.name: output.shape for output in outputs if output.spatial and output.on_path}
        default = self._model.target_layer if self._model is not None and self._model.target_layer else None
        if default is None and _has_submodule(self.network, "layer4"):
            default = "layer4"
        automatic = _automatic_choice(outputs)
        if default is not None and default != self.layer_name and default in shapes:
            suggestion = (
                f"Leave layer out (layer=None) to explain this network's default, {default!r}, "
                f"which outputs {shapes[default]}."
            )
        elif automatic is not None and automatic.name != self.layer_name:
            suggestion = (
                f"The automatic choice for this input is {automatic.name!r}, which outputs {automatic.shape}: "
                f"pass layer={automatic.name!r}, or use a larger image."
            )
        else:
            suggestion = "No layer of this network has a spatial output for this input; use a larger image."
        return (
            f"Layer {self.layer_name!r} outputs shape {shape} for this {inputs.shape[-2]} x {inputs.shape[-1]} input, "
            f"not a spatial map (1, C, h, w with h*w > 1), so it has no class activation map. {suggestion}"
        )

    def __call__(
        self,
        image: ImageLike | torch.Tensor,
        targets: Target | Sequence[Target] | None = None,
        output_size: tuple[int, int] | None = None,
        placement: Placement = "centres",
    ) -> CamResult:
        """Compute the maps of one image for some classes.

        Works under ``torch.no_grad()`` and ``torch.inference_mode()`` too: it
        switches gradients on for its own forward pass.

        Args:
            image: a path, array or PIL image (preprocessed with the model's
                own preprocessing), or a preprocessed float tensor (1, C, H, W), C the input channels (3 for RGB).
            targets: a class name or index, a list of them, or ``None`` for the
                top predicted class.
            output_size: (H, W) to upsample to; by default the image's own
                size, or the tensor's for a tensor.
            placement: ``"centres"`` (default): :attr:`CamResult.maps` put
                each cell at its receptive-field centre, found once per
                network, layer and input size (:func:`~utilities.receptive_field.cell_centres`,
                one extra forward pass the first time). It is the default as a
                convention that holds for every network: the centre of a cell's
                receptive field is computed from the layers' strides and
                paddings, whereas stretching ignores them (notebook 4b shows that
                the input gradients of a trained model do not single out either
                position). Stretching draws ResNet50's ``layer4`` cells 15.5 input pixels below and
                right of their centres and the bundled EfficientNet-Lite0's
                15.5 above and left, at sides that are multiples of 32; at other
                sides the offset varies across the image, up to half a cell. ``"stretch"``: spread the cells evenly over the
                image (bilinear, ``align_corners=False``), as before. A network
                whose centres cannot be found is stretched, with one line on
                standard error. :attr:`CamResult.raw` is the same either way.

        Returns:
            The maps and what they belong to; ``layer`` names the layer explained.

        Raises:
            UnknownClassError: a class name or index the model does not have.
            ValueError: a batch of several images; a layer that does not
                influence the output or whose output is not a spatial map (the
                message names a layer that is); class names whose number
                differs from the network's outputs; maps with NaN or infinite
                values (from a NaN input or an overflowing network).
        """
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}.")
        inputs, image_size = self._inputs(image)
        with _evaluated_frozen(self.network), torch.inference_mode(False), torch.set_grad_enabled(self.uses_gradients):
            # Inputs made under inference mode cannot enter autograd; a clone made outside it can.
            inputs = inputs.clone()
            if self.layer is None:
                self._choose_layer(inputs)
            # A global nn.AdaptiveAvgPool2d would write a full gradient per class; GlobalAveragePool broadcasts one.
            with broadcast_pooling(self.network, keep=[self.layer]), LayerRecorder(
                self.network, {self.layer_name: self.layer}, record_gradients=False
            ) as recorder:
                logits = self.network(inputs)
            problem = logits_problem(logits, type(self.network).__name__)
            if problem is not None:
                raise ValueError(problem)
            recorded = recorder.activations[self.layer_name]
            layout = spatial_layout(tuple(recorded.shape), tuple(inputs.shape[-2:]))
            if layout is None:
                raise ValueError(self._not_spatial_message(tuple(recorded.shape), inputs))
            activation = to_spatial(recorded, layout)[0]
            indices = self._target_indices(targets, logits)
            if self.uses_gradients:
                if not logits.requires_grad:
                    raise ValueError(f"The output does not depend on layer {self.layer_name!r}, so it has no gradient.")
                raw = self._maps_from_gradients(logits, recorder.outputs[self.layer_name], activation, indices, layout)
            else:
                raw = self.maps_without_gradients(inputs, activation, indices)
            # Token and channels-last grids are patches at a fixed stride: spread evenly, each cell is at its centre.
            centres = self._centres(inputs, placement) if layout.kind == "nchw" else None
        raw = F.relu(raw).detach()
        finite = torch.isfinite(raw)
        if not bool(finite.all()):
            raise ValueError(_non_finite_message(raw, finite, f"The {self.name} maps at {self.layer_name!r}"))
        probabilities = logits.detach()[0].softmax(-1)
        return CamResult(
            raw=raw,
            class_indices=indices,
            class_names=[self.class_names[i] for i in indices],
            scores=logits.detach()[0, indices],
            probabilities=probabilities[indices],
            layer=self.layer_name,
            method=self.name,
            image_size=tuple(output_size or image_size),
            model_class_names=self.class_names,
            centres=centres,
        )

    def _centres(self, inputs: torch.Tensor, placement: Placement) -> CellCentres | None:
        """The layer's cell centres at this input size for ``placement="centres"``; ``None`` to stretch."""
        if placement == "stretch":
            return None
        try:
            return cell_centres(self.network, self.layer_name, tuple(inputs.shape[-2:]))
        except ValueError as error:
            if self.network not in _UNPLACED:
                _UNPLACED.add(self.network)
                print(
                    f"The cells of {self.layer_name!r} cannot be placed at their receptive-field centres ({error}); "
                    "the maps are stretched evenly over the image instead.",
                    file=sys.stderr,
                )
            return None

    def _maps_from_gradients(
        self,
        logits: torch.Tensor,
        output: torch.Tensor,
        activation: torch.Tensor,
        indices: list[int],
        layout: SpatialLayout = SpatialLayout("nchw", 0, 0),
    ) -> torch.Tensor:
        maps: list[torch.Tensor] = []
        # Start by assuming each class's gradient is a full copy of the activation;
        # gradients that are broadcast views (see GlobalAveragePool) allow larger chunks.
        bytes_per_class = activation.numel() * activation.element_size()
        done = 0
        while done < len(indices):
            batch = indices[done : done + self._chunk_size(bytes_per_class)]
            done += len(batch)
            one_hot = torch.zeros(len(batch), *logits.shape, dtype=logits.dtype, device=logits.device)
            one_hot[torch.arange(len(batch)), 0, batch] = 1.0
            retain = done < len(indices)
            if len(batch) == 1:
                # One class: the gradient of its logit itself. vmap's batching would cost more than it saves, and a
                # scalar needs no grad_outputs tensor (torch checks one's shape with sympy: 0.6 s to import).
                gradients = torch.autograd.grad(logits[0, batch[0]], output, retain_graph=retain)[0].unsqueeze(0)
            else:
                (gradients,) = torch.autograd.grad(logits, output, one_hot, retain_graph=retain, is_grads_batched=True)
            bytes_per_class = gradients.untyped_storage().nbytes() // len(batch)
            maps.append(self.combine(activation, to_spatial(gradients[:, 0], layout)))
        return torch.cat(maps)

    def combine(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """Gradient methods: activations (C, h, w) and per-class gradients (K, C, h, w) to (K, h, w) maps, before the ReLU."""
        raise NotImplementedError

    def maps_without_gradients(self, inputs: torch.Tensor, activations: torch.Tensor, indices: list[int]) -> torch.Tensor:
        """Gradient-free methods: the network input, activations (C, h, w) and K class indices to (K, h, w) maps."""
        raise NotImplementedError


class GradCAM(CAMMethod):
    """Grad-CAM (Selvaraju et al., 2017): channels weighted by their mean gradient."""

    name = "Grad-CAM"

    def combine(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        weights = gradients.mean(dim=(-2, -1))  # (K, C): one weight per channel and class
        return torch.einsum("kc,chw->khw", weights, activations)


def grad_cam(
    model: LoadedModel | nn.Module,
    image: ImageLike | torch.Tensor,
    targets: Target | Sequence[Target] | None = None,
    layer: LayerSpec | None = None,
    output_size: tuple[int, int] | None = None,
    chunk_size: int | None = None,
    class_names: Sequence[str] | None = None,
    placement: Placement = "centres",
) -> CamResult:
    """Grad-CAM of one image for one or many classes at one layer.

    All classes share one forward pass; their gradients come from batched
    backward passes. See :class:`CAMMethod` for the arguments, and for the
    layer explained when ``layer`` is ``None`` (the model's default layer,
    else ``layer4``, else the last layer with a spatial output), and
    :meth:`CAMMethod.__call__` for ``output_size`` and ``placement``
    (``"centres"``: each cell drawn at its receptive-field centre;
    ``"stretch"``: cells spread evenly, the behaviour before placement).

    Example::

        result = grad_cam(model, "data/cat_and_coffee.png", ["Egyptian cat", "espresso"])
        result.maps.shape  # (2, 224, 448)
    """
    return GradCAM(model, layer, chunk_size, class_names)(image, targets, output_size, placement)
