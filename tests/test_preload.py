"""Training's imports wait for the first batch (issue 12): after the widget's cell, the kernel
imports ``torch._dynamo`` (2-3 s holding the GIL) only once the first cards are shown."""

from __future__ import annotations

import sys
import threading

import IPython
from IPython.core.events import EventManager, available_events

from alwidget.widget import preload


class CellEvents:
    """What :func:`preload.import_after_this_cell` needs of an IPython shell: its events."""

    def __init__(self) -> None:
        self.events = EventManager(self, available_events)


def test_training_imports_run_after_the_cell_and_after_the_first_batch(monkeypatch):
    shell = CellEvents()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    module = "alwidget_test_preload_dummy"
    imported_at: list[str] = []
    monkeypatch.setattr(
        preload.importlib,
        "import_module",
        lambda name: imported_at.append(f"import {name}") or sys.modules["json"],
    )
    first_batch = threading.Event()

    def wait_for_first_batch() -> None:
        imported_at.append("waited")
        assert first_batch.wait(5)

    assert preload.import_after_this_cell([module], first=wait_for_first_batch)
    assert imported_at == []  # nothing during the cell
    threading.Timer(0.2, first_batch.set).start()
    shell.events.trigger("post_run_cell", None)
    assert imported_at == ["waited", f"import {module}"]
    shell.events.trigger("post_run_cell", None)  # a later cell: nothing more
    assert imported_at == ["waited", f"import {module}"]


def test_a_failing_wait_does_not_stop_the_imports(monkeypatch):
    shell = CellEvents()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    imported: list[str] = []
    monkeypatch.setattr(preload.importlib, "import_module", lambda name: imported.append(name))

    def broken_wait() -> None:
        raise RuntimeError("the widget was closed")

    preload.import_after_this_cell(["some.module"], first=broken_wait)
    shell.events.trigger("post_run_cell", None)
    assert imported == ["some.module"]
