"""``ErrorGuard``: the one way widget callbacks report errors to the person looking at them.

A click or key handler that raises inside ipywidgets only reaches the kernel's log, which
nobody in a notebook reads. Every callback of the labeling panel and of the map runs through a
guard instead: the error's message goes to the owner's banner (its ``show`` callable) and the
details to a visible ``Output`` log.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

import ipywidgets as widgets

from ..errors import AlwidgetError

__all__ = ["ErrorGuard"]


class ErrorGuard:
    """Runs callbacks and shows what they raise.

    Parameters
    ----------
    show : callable
        ``show(message)`` with the one-line message, or ``""`` when a new callback starts (the
        owner's banner or status line).
    log_class : str
        CSS class of :attr:`log`, the ``Output`` that receives each error: the message for an
        :class:`alwidget.errors.AlwidgetError` (it already says what to fix), the full
        traceback for anything else.
    max_height : str
        Height of :attr:`log` before it scrolls.
    """

    def __init__(self, show: Callable[[str], None], *, log_class: str, max_height: str):
        self._show = show
        self.log = widgets.Output(layout=widgets.Layout(max_height=max_height, overflow="auto"))
        self.log.add_class(log_class)

    def run(self, function: Callable, *args) -> None:
        """Call ``function(*args)``; an ``Exception`` it raises is reported, not raised."""
        # Cleared first: a background job started here may report an error before we return.
        self._show("")
        try:
            function(*args)
        except Exception as error:  # noqa: BLE001 - shown to the user, who decides
            self.report(error)

    def wrap(self, function: Callable) -> Callable:
        """``function`` as a guarded callback (for ``on_click`` and similar; arguments pass on)."""
        return lambda *args: self.run(function, *args)

    def report(self, error: BaseException, context: str = "") -> None:
        """Show ``error``, prefixed by ``context`` (e.g. ``"training failed: "``)."""
        message = f"{context}{type(error).__name__}: {error}"
        self._show(message)
        if isinstance(error, AlwidgetError):
            detail = message
        else:
            trace = traceback.format_exception(type(error), error, error.__traceback__)
            detail = context + "".join(trace)
        self.log.append_stderr(detail.rstrip("\n") + "\n")
