"""One call's arguments as plain Python values: ``Args(*args, **kwargs)``.

A round's arguments are one value (``call(args=[...], kwargs={...})``), but a
``map`` takes one set of arguments per input, as items of an iterable, and a
bare value cannot be told from the ``(args, kwargs)`` tuple of protobuf lists
that ``call()`` also takes. ``Args`` is that one item: the arguments written as
in the call of a Python function, encoded (each value to a ``Variant``) when a
runner prepares the request, so a bad value is refused before any model is
called, with its position or keyword named.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Args"]


class Args:
    """The arguments of one call, as plain values: ``Args(payload, horizon=3)`` calls ``method(payload, horizon=3)``.

    One input of :meth:`~mrclient.DynamicSubclassModelConcurrentRunner.map`,
    and accepted by ``call(arguments=Args(...))`` too. Values are encoded as
    ``call(args=..., kwargs=...)`` encodes them (JSON, numbers, strings, a
    pandas DataFrame as Parquet); an ``Argument`` or ``KwArgument`` message is
    sent as it is.
    """

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Args):
            return NotImplemented
        return self.args == other.args and self.kwargs == other.kwargs

    __hash__ = None  # type: ignore[assignment]  # mutable values inside: like a list, not hashable

    def __repr__(self) -> str:
        parts = [repr(value) for value in self.args]
        parts += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"Args({', '.join(parts)})"

