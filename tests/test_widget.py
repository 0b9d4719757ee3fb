"""The labeling widget driven through its public methods, buttons and key messages."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pytest
from fixtures.widget_sessions import Gate, gated_session, tabular_pool, true_class

import alwidget as al
from alwidget.errors import AlwidgetError, TrainingInProgressError
from alwidget.widget.keys import build_key_map


@pytest.fixture
def gate():
    gate = Gate()
    yield gate
    gate.opened.set()  # never leave a training thread waiting


@pytest.fixture
def widget(gate):
    widget = al.Widget(gated_session(gate), batch_size=6).ready()
    yield widget
    gate.opened.set()
    widget.wait(timeout=60)
    widget.close()


def browser_key(widget, key: str, focused: str | None = None) -> None:
    """Deliver a key exactly as the browser's comm message does."""
    widget.key_catcher._receive(
        widget.key_catcher, {"event": "key", "key": key, "focused": focused}, []
    )


def test_key_acts_on_the_item_the_browser_showed(widget):
    shown = widget.queue[2]  # e.g. a card click whose message the kernel has not seen yet
    browser_key(widget, "b", focused=str(shown.id))
    assert widget.session.labels == {shown.id: "b"}


def test_a_key_for_an_item_that_left_the_queue_stores_nothing_and_says_so(widget):
    """The page moves on before the kernel answers; if a refresh replaced the batch in the
    meantime, the key must not land on whatever is focused now."""
    gone = widget.queue[1]
    widget.queue = [item for item in widget.queue if item.id != gone.id]  # as a refresh does
    browser_key(widget, "b", focused=str(gone.id))
    assert widget.session.labels == {}
    assert "left the queue" in widget.last_error and "nothing was stored" in widget.last_error
    browser_key(widget, "s", focused=str(gone.id))  # a skip neither
    assert widget.focused_item is not None and widget.session.labels == {}


def test_importing_alwidget_does_not_import_ipywidgets():
    code = "import sys, alwidget; assert 'ipywidgets' not in sys.modules; alwidget.Widget; assert 'ipywidgets' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_label_button_stores_in_session_then_advances(widget):
    first, second = widget.queue[0], widget.queue[1]
    assert widget.focused_item == first
    widget.label_buttons["b"].click()
    assert widget.session.labels == {first.id: "b"}
    assert widget.focused_item.id == second.id
    assert first.id not in [item.id for item in widget.queue]
    assert widget.n_labels == 1 and widget.stale
    assert "<b>1</b> labeled" in widget.counts.value
    assert widget.last_error == ""


def test_failed_store_shows_error_and_does_not_advance(widget):
    in_hand = widget.focused_item
    widget.session.label(in_hand.id, "a")  # someone else labeled it: the widget's store call fails
    widget.label_buttons["c"].click()
    assert widget.session.labels[in_hand.id] == "a"
    assert widget.focused_item.id == in_hand.id
    assert (
        "AlreadyLabeledError" in widget.last_error
        and "already labeled" in widget.error_banner.value
    )
    assert any("already labeled" in output.get("text", "") for output in widget.errors.outputs)
    with pytest.raises(AlwidgetError):
        widget.label("c")


def test_keys_label_skip_undo_and_move_focus(widget):
    assert widget.key_map == {"a": "a", "b": "b", "c": "c"}
    first = widget.focused_item
    browser_key(widget, "c")
    assert widget.session.labels == {first.id: "c"}
    skipped = widget.focused_item
    browser_key(widget, "s")
    assert skipped.id not in [item.id for item in widget.queue] and widget.session.n_labels == 1
    browser_key(widget, "ArrowRight")
    assert widget.focused == 1
    browser_key(widget, "ArrowLeft")
    assert widget.focused == 0
    browser_key(widget, "u")  # undoes the skip
    assert widget.focused_item.id == skipped.id
    browser_key(widget, "u")  # undoes the label
    assert widget.session.labels == {} and widget.focused_item.id == first.id
    browser_key(widget, "x")  # not a mapped key: nothing happens
    assert widget.session.n_labels == 0 and widget.last_error == ""


def test_undo_removes_the_stored_label_and_refocuses_the_item(widget):
    labeled = [widget.label(true_class(widget.session, widget.focused_item.id)) for _ in range(3)]
    widget.undo_button.click()
    assert list(widget.session.labels) == labeled[:2]
    assert widget.focused_item.id == labeled[2]
    assert widget.n_labels == 2
    widget.undo()
    widget.undo()
    assert widget.session.labels == {}
    widget.undo_button.click()
    assert "nothing to undo" in widget.last_error


def test_strip_click_focuses_the_item(widget):
    widget.strip.click(3)  # the message a click on the fourth card sends
    assert widget.focused == 3 and widget.strip.focused == 3
    assert widget.focused_item == widget.queue[3]
    assert widget.strip.cards[3]["key"] == str(widget.queue[3].id)
    chosen = widget.focused_item.id
    widget.label("a")
    assert widget.session.labels == {chosen: "a"}


def test_refill_keeps_the_queue_filled(widget):
    for _ in range(15):
        widget.label(true_class(widget.session, widget.focused_item.id))
        widget.wait(timeout=30)
    assert widget.session.n_labels == 15
    assert len(widget.queue) >= widget.refill_below
    queued = [item.id for item in widget.queue]
    assert len(set(queued)) == len(queued) and not set(queued) & set(widget.session.labels)


def test_retrain_runs_in_background_while_labeling_and_refreshes_the_batch(widget, gate):
    for _ in range(6):
        widget.label(true_class(widget.session, widget.focused_item.id))
    widget.wait(timeout=30)
    future = widget.retrain()
    assert gate.entered.wait(timeout=30), "training never started"
    assert widget.training and widget.retrain_button.disabled
    with pytest.raises(TrainingInProgressError):
        widget.retrain()
    during = [widget.label(true_class(widget.session, widget.focused_item.id)) for _ in range(3)]
    assert widget.training and set(during) <= set(widget.session.labels)
    widget.focus(1)
    in_hand = widget.focused_item
    before = [item.id for item in widget.queue]
    gate.opened.set()
    future.result(timeout=60)
    widget.wait(timeout=60)
    assert not widget.training and widget.model_version == 1
    assert widget.focused_item.id == in_hand.id and widget.focused == 0
    assert [item.id for item in widget.queue] != before
    assert widget.labels_since_retrain == 3 and widget.stale  # labeled after the training snapshot
    assert widget.learning_curve.points == [
        (6, pytest.approx(widget.session.history[0]["accuracy"]))
    ]
    assert "model v1" in widget.train_status.value and widget.train_progress.value == 1.0


def test_failed_training_shows_error_and_keeps_the_old_model(widget, gate):
    for _ in range(5):
        widget.label(true_class(widget.session, widget.focused_item.id))
    gate.failure = "out of memory on purpose"
    gate.opened.set()
    widget.retrain_button.click()
    widget.wait(timeout=60)
    assert widget.model_version == 0 and widget.session.model_version == 0
    assert not widget.training and not widget.retrain_button.disabled
    assert "out of memory on purpose" in widget.last_error
    assert "previous model is kept" in widget.last_error
    assert widget.train_progress.bar_style == "danger"
    widget.label(true_class(widget.session, widget.focused_item.id))  # labeling still works


def test_training_with_one_class_reports_why(gate):
    session = gated_session(gate)
    widget = al.Widget(session, batch_size=4).ready()
    try:
        widget.label("a")
        widget.retrain_button.click()
        widget.wait(timeout=30)
        assert "at least two classes" in widget.last_error
        assert widget.model_version == 0
    finally:
        widget.close()


def test_auto_retrain_every_n_labels(gate):
    gate.opened.set()
    widget = al.Widget(gated_session(gate), batch_size=6, auto_retrain_every=4).ready()
    try:
        for _ in range(4):
            widget.label(true_class(widget.session, widget.focused_item.id))
        widget.wait(timeout=60)
        assert widget.model_version == 1
        widget.auto_retrain_box.value = 0  # the text box drives the trait
        assert widget.auto_retrain_every == 0
        for _ in range(5):
            widget.label(true_class(widget.session, widget.focused_item.id))
        widget.wait(timeout=60)
        assert widget.model_version == 1
    finally:
        widget.close()


def test_why_pane_shows_probabilities_votes_and_bald_split(gate):
    gate.opened.set()
    session = gated_session(gate, strategy="bald", mc_samples=8, cold_start=False)
    widget = al.Widget(session, batch_size=5).ready()
    try:
        detail = widget.focused_item
        html = widget.why.value
        assert f"pool rank {detail.pool_rank} of {detail.n_scored}" in html
        assert "MC votes (8 samples)" in html
        assert f"Entropy of the mean {detail.entropy_of_mean:.3f}" in html
        assert f"mean entropy {detail.mean_entropy:.3f}" in html
        for name in detail.probabilities:
            assert f'<td class="alwidget-class">{name}</td>' in html
    finally:
        widget.close()


def test_default_and_custom_key_maps():
    assert build_key_map(["0", "1", "2"]) == {"0": "0", "1": "1", "2": "2"}
    assert build_key_map(["cat", "dog"]) == {"1": "cat", "2": "dog"}
    assert build_key_map(["s", "t"]) == {"1": "s", "2": "t"}  # "s" is the skip key
    assert build_key_map(["cat", "dog"], {"c": "cat", "d": "dog"}) == {"c": "cat", "d": "dog"}
    with pytest.raises(ValueError, match="reserved"):
        build_key_map(["cat", "dog"], {"s": "cat"})
    with pytest.raises(ValueError, match="unknown class 'cow'"):
        build_key_map(["cat", "dog"], {"c": "cow"})


def test_custom_key_map_labels_through_keys(gate):
    widget = al.Widget(gated_session(gate), key_map={"j": "a", "k": "b"}).ready()
    try:
        assert {"j", "k", "s", "u"} <= set(widget.key_catcher.watched_keys)
        first = widget.focused_item
        browser_key(widget, "k")
        assert widget.session.labels == {first.id: "b"}
        assert widget.label_buttons["b"].description == "b (k)"
    finally:
        widget.close()


def test_pool_exhaustion_is_shown(gate):
    session = gated_session(gate, pool=tabular_pool(n_items=5))
    widget = al.Widget(session, batch_size=3, refill_below=1).ready()
    try:
        for _ in range(5):
            widget.wait(timeout=30)
            widget.label(true_class(session, widget.focused_item.id))
        widget.wait(timeout=30)
        assert widget.exhausted and widget.focused_item is None
        assert widget.strip.empty_message == "Every item is labeled."
        assert all(button.disabled for button in widget.label_buttons.values())
        widget.undo()
        assert not widget.exhausted and widget.focused_item is not None
    finally:
        widget.close()


def test_close_stops_a_running_training(gate):
    widget = al.Widget(gated_session(gate), batch_size=6).ready()
    for _ in range(4):
        widget.label(true_class(widget.session, widget.focused_item.id))
    widget.retrain()
    assert gate.entered.wait(timeout=30)
    widget.close()
    gate.opened.set()  # the next training step sees the stop request
    widget.wait(timeout=30)
    assert widget.session.model_version == 0 and not widget.session.is_training
    assert widget.strip.comm is None and widget.label_buttons["a"].comm is None


def test_learning_curve_without_held_out_split_is_cross_validated(gate):
    gate.opened.set()
    rows = np.random.default_rng(3).normal(size=(90, 4)).astype(np.float32)
    targets = (rows[:, 0] > 0).astype(int)
    pool = al.Pool(rows, targets=targets, classes=["neg", "pos"])  # no test split
    widget = al.Widget(gated_session(gate, pool=pool, cv_folds=3), batch_size=6).ready()
    try:
        for _ in range(12):
            widget.label(true_class(widget.session, widget.focused_item.id))
            widget.wait(timeout=30)
        widget.retrain().result(timeout=120)
        widget.wait(timeout=60)
        accuracy = widget.session.history[-1]["accuracy"]
        assert accuracy is not None
        assert widget.learning_curve.points == [(12, pytest.approx(accuracy))]
        assert widget.learning_curve.axis_title == "cross-validated accuracy"
        assert 'data-labels="12"' in widget.learning_curve.box.value
        assert f"cross-validated accuracy {accuracy:.1%}" in widget.counts.value
    finally:
        widget.close()


def test_a_typed_new_class_gets_stored_a_button_and_a_key():
    session = al.Session(tabular_pool(), "mlp", strategy="entropy", seed=0, store=False)
    widget = al.Widget(session, batch_size=4, allow_new_classes=True).ready()
    try:
        first = widget.focused_item
        widget.new_class_text.value = "<i>weird</i>"
        widget.new_class_button.click()
        assert widget.last_error == ""
        assert session.labels == {first.id: "<i>weird</i>"}
        assert session.classes[-1] == "<i>weird</i>"
        button = widget.label_buttons["<i>weird</i>"]
        assert button in widget.label_row.children and widget.new_class_text.value == ""
        key = next(k for k, name in widget.key_map.items() if name == "<i>weird</i>")
        assert key in widget.key_catcher.watched_keys
        second = widget.focused_item
        browser_key(widget, key, focused=str(second.id))
        assert session.labels[second.id] == "<i>weird</i>"
        assert session.label_counts()["<i>weird</i>"] == 2
        assert "&lt;i&gt;weird&lt;/i&gt;" in widget.counts.value  # shown as text, not markup
    finally:
        widget.close()


def test_new_classes_are_off_unless_asked(widget):
    with pytest.raises(AlwidgetError, match="allow_new_classes=True"):
        widget.label_new_class("zebra")
    widget.new_class_button.click()
    assert "allow_new_classes" in widget.last_error


def test_the_widget_and_its_learning_curve_never_import_plotly():
    """Importing plotly's widget took 4-12 s on the kernel's thread (nbformat, jsonschema,
    lark grammars) while the user waited for the first batch; the curve is plain SVG."""
    code = (
        "import sys, numpy as np, alwidget as al\n"
        "rows = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)\n"
        "pool = al.Pool(rows, targets=(rows[:, 0] > 0).astype(int), classes=['a', 'b'])\n"
        "session = al.Session(pool, model='mlp', strategy='entropy', seed=0, store=False,"
        " cv_folds=3)\n"
        "widget = al.Widget(session, batch_size=6).ready()\n"
        "for _ in range(12):\n"
        "    item = widget.focused_item\n"
        "    widget.label(session.classes[int(pool.targets[pool.position(item.id)])])\n"
        "    widget.wait(timeout=60)\n"
        "widget.retrain().result(timeout=120)\n"
        "widget.wait(timeout=60)\n"
        "print(len(widget.learning_curve.points), 'plotly' in sys.modules)\n"
        "widget.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["1", "False"], result.stdout


def test_a_key_press_is_acknowledged_after_its_handlers_ran_even_when_they_fail():
    """The page moves on before the kernel answers (keys.py); ``acknowledged`` tells it which
    presses the kernel has handled, after their updates were sent, refused or not."""
    from alwidget.widget.keys import KeyCatcher

    catcher = KeyCatcher(["1", "2"], advancing_keys=["1"])
    seen = []
    catcher.on_key(lambda key, focused: seen.append((key, focused, catcher.acknowledged)))
    catcher._receive(catcher, {"event": "key", "key": "1", "focused": "7", "seq": 3}, [])
    assert seen == [("1", "7", 0)] and catcher.acknowledged == 3
    catcher._receive(catcher, {"event": "key", "key": "2", "focused": None, "seq": 2}, [])
    assert catcher.acknowledged == 3  # an older number never moves it back

    def refuse(_key, _focused):
        raise AlwidgetError("refused")

    catcher.on_key(refuse)
    with pytest.raises(AlwidgetError):
        catcher._receive(catcher, {"event": "key", "key": "1", "focused": "8", "seq": 4}, [])
    assert catcher.acknowledged == 4


# Run in a kernel first: records which thread imports each module imported from then on.
IMPORT_RECORDER = (
    "import sys, threading\n"
    "imported_by = []\n"
    "class Recorder:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name not in sys.modules:\n"
    "            imported_by.append((threading.current_thread().name, name))\n"
    "        return None\n"
    "sys.meta_path.insert(0, Recorder())\n"
)
WORKER_IMPORTS = (
    "by_workers = {name for thread, name in imported_by if thread.startswith('alwidget')}\n"
    "print(','.join(sorted(by_workers)) or 'nothing')\n"
)


@contextlib.contextmanager
def kernel_cells():
    """A fresh IPython kernel; yields ``run(code) -> printed words`` (fails on an error)."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:

        def run(code: str) -> list[str]:
            chunks = []
            reply = client.execute_interactive(
                code,
                timeout=300,
                output_hook=lambda msg: (
                    chunks.append(msg["content"].get("text", ""))
                    if msg["msg_type"] == "stream"
                    else chunks.append(str(msg["content"].get("traceback", "")))
                    if msg["msg_type"] == "error"
                    else None
                ),
            )
            assert reply["content"]["status"] == "ok", "".join(chunks)
            return "".join(chunks).split()

        yield run
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_in_a_kernel_the_panels_worker_threads_import_nothing():
    """CPython 3.11 can fail two threads building ASTs at once (gh-106905): a map cell failed
    2 times in 4 while the first batch imported scikit-learn on a worker thread. The imports
    the jobs need happen on the kernel's thread (the batch's in the constructor, training's
    after the widget's cell); the workers import nothing, through a first batch, labels and a
    retrain."""
    with kernel_cells() as run:
        run(IMPORT_RECORDER)
        assert run(
            "import numpy as np, alwidget as al\n"
            "rows = np.random.default_rng(0).normal(size=(80, 3)).astype(np.float32)\n"
            "pool = al.Pool(rows, targets=(rows[:, 0] > 0).astype(int), classes=['a', 'b'])\n"
            "session = al.Session(pool, model='mlp', strategy='entropy', seed=0, store=False,"
            " cv_folds=3)\n"
            "widget = al.Widget(session, batch_size=6)\n"
            "print('scipy.cluster.vq' in sys.modules, 'torch._dynamo' in sys.modules)\n"
        ) == ["True", "False"]  # the batch's modules by the constructor; training's after it
        assert run(
            "print('scipy.cluster.vq' in sys.modules, 'torch._dynamo' in sys.modules)\n"
            "widget.ready(timeout=120)\n"
            "for _ in range(12):\n"
            "    item = widget.focused_item\n"
            "    widget.label(session.classes[int(pool.targets[pool.position(item.id)])])\n"
            "    widget.wait(timeout=60)\n"
            "widget.retrain().result(timeout=120)\n"
            "widget.wait(timeout=60)\n"
            "print(len(session.history))\n" + WORKER_IMPORTS + "widget.close()\n"
        ) == ["True", "True", "1", "nothing"]


RESUMABLE_SESSION = (
    "import numpy as np, torch, alwidget as al\n"
    "torch.set_num_threads(1)\n"
    "rows = np.random.default_rng(0).normal(size=(80, 3)).astype(np.float32)\n"
    "pool = al.Pool(rows, targets=(rows[:, 0] > 0).astype(int), classes=['a', 'b'])\n"
    "session = al.Session(pool, model='mlp', strategy='entropy', seed=0, store=STORE,"
    " cv_folds=3, train_config=al.TrainConfig(min_steps=15, max_steps=30, max_epochs=5))\n"
)


def test_a_resumed_trained_session_shows_its_batch_before_trainings_imports(tmp_path):
    """A session resumed with a trained model starts a label check (training) with its first
    batch. The widget still leaves training's imports for after its cell: the check waits
    for them on its worker, which imports nothing, and ``Widget.wait`` in the widget's own
    cell imports them itself instead of waiting for a cell end that cannot come."""
    store = repr(str(tmp_path / "labels.db"))
    trained = subprocess.run(
        [
            sys.executable,
            "-c",
            RESUMABLE_SESSION.replace("STORE", store)
            + "ids = list(pool.ids[:20])\n"
            + "session.label(ids, [session.classes[int(t)] for t in pool.targets[:20]])\n"
            + "session.retrain()\nprint(session.model_version)\n",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.stdout.split()[-1:] == ["1"], trained.stderr
    with kernel_cells() as run:
        run(IMPORT_RECORDER)
        assert run(
            RESUMABLE_SESSION.replace("STORE", store)
            + "session.relabel_fraction = 0.5\n"
            + "widget = al.Widget(session, batch_size=6)\n"
            + "print(session.model_version, 'torch._dynamo' in sys.modules)\n"
        ) == ["1", "False"]
        assert run(
            "widget.ready(timeout=120)\nwidget.wait(timeout=120)\n"
            "print('torch._dynamo' in sys.modules, session.cleaning.suspects_ready())\n"
            + WORKER_IMPORTS
        ) == ["True", "True", "nothing"]
        # In one cell: the widget, then waiting for its jobs (the label check among them).
        assert run(
            "widget.close()\n"
            "widget = al.Widget(session, batch_size=6)\n"
            "widget.ready(timeout=120)\nwidget.wait(timeout=120)\nprint('waited')\n"
            "widget.close()\n"
        ) == ["waited"]
