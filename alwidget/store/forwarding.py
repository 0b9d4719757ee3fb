"""Methods of the store's facade that one of its parts carries out."""

from __future__ import annotations

import functools
from collections.abc import Callable


class ForwardedTo:
    """Declares a :class:`LabelStore` method that one of its parts carries out.

    When the class is built, the declaration is replaced by a plain method with the part's
    signature and docstring, so ``help(store.claim)`` documents what runs.

    Parameters
    ----------
    part_of : callable
        Returns the part of a given store that carries the method out.
    implementation : function
        The part's method, as found on the part's class.
    """

    def __init__(self, part_of: Callable[[object], object], implementation: Callable) -> None:
        self._part_of = part_of
        self._implementation = implementation

    def __set_name__(self, owner: type, name: str) -> None:
        part_of, implementation = self._part_of, self._implementation

        @functools.wraps(implementation)
        def method(store, *args, **kwargs):
            return implementation(part_of(store), *args, **kwargs)

        method.__name__ = name
        method.__qualname__ = f"{owner.__qualname__}.{name}"
        setattr(owner, name, method)


def forwarded_to(part_of: Callable[[object], object], *implementations: Callable) -> tuple:
    """One :class:`ForwardedTo` per implementation, to unpack into names in a class body."""
    return tuple(ForwardedTo(part_of, implementation) for implementation in implementations)
