"""Kind -> model class, as timm's ``@register_model``: each model file registers its classes, and
:func:`build_model` builds the one a config's ``kind`` names.

A config (``train.config.ModelConfig``, the user-facing settings of every model) holds more
fields than one model takes: :func:`build_model` passes a model the fields its constructor
names, and the constructor refuses any other argument.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from train.models.base import HeadModel

M = TypeVar("M", bound=type[HeadModel])
_MODELS: dict[str, type[HeadModel]] = {}


class ModelSettings(Protocol):
    """A model config: ``kind`` and every field by name (``ModelConfig`` is one)."""

    kind: str

    def model_dump(self) -> dict[str, Any]: ...


def register_model(kind: str) -> Callable[[M], M]:
    """Class decorator: ``kind`` in a config builds this class."""

    def add(cls: M) -> M:
        if _MODELS.setdefault(kind, cls) is not cls:
            raise ValueError(f"model kind {kind!r} is registered twice")
        return cls

    return add


def model_kinds() -> tuple[str, ...]:
    return tuple(_MODELS)


def model_class(kind: str) -> type[HeadModel]:
    try:
        return _MODELS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}: {', '.join(_MODELS)}") from None


def constructor_arguments(cls: type[HeadModel]) -> tuple[str, ...]:
    """The keyword arguments of ``cls`` that a config sets (all but ``num_classes``)."""
    return tuple(name for name, p in inspect.signature(cls).parameters.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "num_classes")


def build_model(config: ModelSettings, *, num_classes: int) -> HeadModel:
    """The model ``config.kind`` names, given the config's fields its constructor takes."""
    cls = model_class(config.kind)
    fields = config.model_dump()
    return cls(num_classes=num_classes, **{k: fields[k] for k in constructor_arguments(cls)
                                           if k in fields})
