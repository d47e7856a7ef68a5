"""ImageNet class names: lookup by name or index, and suggestions for a miss.

Names are torchvision's 1000 ImageNet category names (``"tabby"``,
``"Egyptian cat"``, ...). Suggestions also search the WordNet synonyms and
definitions that timm ships for the same 1000 classes, so that ``"dog"``
finds the dog breeds and ``"car"`` finds ``"convertible"``.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import Sequence

from torchvision.models import ResNet50_Weights

__all__ = [
    "IMAGENET_CLASS_NAMES",
    "UnknownClassError",
    "check_class_names",
    "class_index",
    "default_class_names",
    "find_classes",
]

#: The 1000 ImageNet class names in the order of the classifier's outputs.
IMAGENET_CLASS_NAMES: tuple[str, ...] = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


class UnknownClassError(ValueError):
    """A class name or index that the model does not have.

    Attributes:
        suggestions: the closest real class names, best first.
    """

    def __init__(self, message: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.suggestions = list(suggestions)


def default_class_names(count: int) -> tuple[str, ...]:
    """Names for a classifier that came without any: ImageNet's for 1000 outputs, else ``"class 0"`` .. ``"class N-1"``.

    Args:
        count: the number of outputs.

    Returns:
        ``count`` names.
    """
    if count == len(IMAGENET_CLASS_NAMES):
        return IMAGENET_CLASS_NAMES
    return tuple(f"class {index}" for index in range(count))


def check_class_names(class_names: Sequence[str], count: int | None = None) -> tuple[str, ...]:
    """Class names as a tuple, after checking they can name a classifier's outputs.

    Args:
        class_names: one name per output, in output order.
        count: the number of outputs, if known.

    Returns:
        The names as a tuple.

    Raises:
        TypeError: a single string, or names that are not strings.
        ValueError: the wrong number of names, or the same name twice.
    """
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(
            f"class_names must be a list of strings, one per output, got {type(class_names).__name__}"
            + (f" {class_names!r}." if isinstance(class_names, str) else ".")
        )
    names = tuple(class_names)
    not_strings = [name for name in names if not isinstance(name, str)]
    if not_strings:
        raise TypeError(f"class_names must be strings; got {not_strings[0]!r} ({type(not_strings[0]).__name__}).")
    if count is not None and len(names) != count:
        raise ValueError(
            f"Got {len(names)} class names but the network has {count} outputs; "
            "pass one name per output, in the order of the outputs."
        )
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in seen:
            raise ValueError(
                f"class_names has {name!r} twice (positions {seen[name]} and {position}); "
                "each output needs its own name to be found by name."
            )
        seen[name] = position
    return names


@lru_cache(maxsize=1)
def _imagenet_descriptions() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """WordNet synonyms and definitions of the 1000 ImageNet classes, lower case."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    lemmas, definitions = [], []
    for index in range(info.num_classes()):
        lemma_text, _, definition = info.index_to_description(index, detailed=True).partition(":")
        lemmas.append(lemma_text.lower())
        definitions.append(definition.lower())
    return tuple(lemmas), tuple(definitions)


def _synonyms(index: int, class_names: Sequence[str]) -> list[str]:
    if tuple(class_names) != IMAGENET_CLASS_NAMES:
        return []
    return [s.strip() for s in _imagenet_descriptions()[0][index].split(",")]


def find_classes(query: str, class_names: Sequence[str] = IMAGENET_CLASS_NAMES, limit: int | None = None) -> list[str]:
    """Class names that match a free-text query, best first.

    Ranking: the query as a whole word of a class name; then of one of its
    WordNet synonyms; then of its WordNet definition; then names spelt
    similarly (difflib). Within a rank, names closer to the query come first.

    Args:
        query: a word or phrase, any case (``"car"``, ``"Dog"``).
        class_names: the model's class names; WordNet text is only used for
            the 1000 ImageNet classes.
        limit: return at most this many names; ``None`` returns all.

    Returns:
        Matching class names, possibly empty.
    """
    words = query.strip().lower()
    if not words:
        return []
    # "cats" should find "cat": also try the singular.
    forms = {words, words[:-1]} if words.endswith("s") and len(words) > 3 else {words}
    pattern = re.compile("|".join(r"\b" + re.escape(form) + r"\b" for form in sorted(forms)))
    lowered = [name.lower() for name in class_names]
    ranked: dict[int, tuple[int, float]] = {}

    def add(index: int, tier: int) -> None:
        closeness = difflib.SequenceMatcher(None, words, lowered[index]).ratio()
        ranked.setdefault(index, (tier, -closeness))

    for index, name in enumerate(lowered):
        if pattern.search(name):
            add(index, 0)
    if tuple(class_names) == IMAGENET_CLASS_NAMES:
        lemmas, definitions = _imagenet_descriptions()
        for tier, texts in ((1, lemmas), (2, definitions)):
            for index, text in enumerate(texts):
                if pattern.search(text):
                    add(index, tier)
    for name in difflib.get_close_matches(words, lowered, n=10, cutoff=0.6):
        add(lowered.index(name), 3)
    order = sorted(ranked, key=lambda index: (*ranked[index], index))
    names = [class_names[index] for index in order]
    return names if limit is None else names[:limit]


def class_index(name_or_index: str | int, class_names: Sequence[str] = IMAGENET_CLASS_NAMES) -> int:
    """The output index of a class, given its name (any case) or its index.

    A name matches a class name exactly (as written first: ``"cardigan"`` is the
    sweater, ``"Cardigan"`` the dog), else ignoring case; failing that, a
    WordNet synonym that only one class has (``"tabby cat"`` is ``"tabby"``).

    Args:
        name_or_index: a class name such as ``"Egyptian cat"``, or an index.
        class_names: the model's class names.

    Returns:
        The index into the model's outputs.

    Raises:
        UnknownClassError: no such class; the message lists the closest names.
        TypeError: neither a string nor an integer.
    """
    count = len(class_names)
    if isinstance(name_or_index, bool) or not isinstance(name_or_index, (str, int)) and not hasattr(name_or_index, "__index__"):
        raise TypeError(f"A class is given by its name (str) or index (int), not {type(name_or_index).__name__}.")
    if not isinstance(name_or_index, str):
        index = int(name_or_index.__index__())
        if not 0 <= index < count:
            raise UnknownClassError(
                f"Class index {index} is out of range: this model has {count} classes, numbered 0 to {count - 1}."
            )
        return index
    # The exact spelling first: ImageNet has "Cardigan" (a dog) and "cardigan" (a sweater).
    exact = name_or_index.strip()
    if exact in class_names:
        return list(class_names).index(exact)
    wanted = exact.lower()
    for index, name in enumerate(class_names):
        if name.lower() == wanted:
            return index
    synonym_hits = [index for index in range(count) if wanted in _synonyms(index, class_names)]
    if len(synonym_hits) == 1:
        return synonym_hits[0]
    suggestions = [class_names[index] for index in synonym_hits] or find_classes(wanted, class_names)
    shown = ", ".join(repr(name) for name in suggestions[:8])
    if not suggestions:
        hint = "No class name resembles it; print the model's class_names to see all of them."
    elif synonym_hits:
        hint = f"It names several classes: {shown}. Use one of these names."
    else:
        more = f" (and {len(suggestions) - 8} more)" if len(suggestions) > 8 else ""
        hint = f"Closest names: {shown}{more}."
    raise UnknownClassError(f"No class called {name_or_index!r}. {hint}", suggestions)
