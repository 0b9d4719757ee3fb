"""Crash test: a process writing to the store is killed with SIGKILL at random moments.

A child (forked from a warm "zygote" process, see fixtures/store_worker.py) labels, undoes,
records rounds, saves its queue and checkpoints in a loop, printing a line after each call
returns. After every kill the store is reopened: everything the child reported as done must
be there, at most the one call in flight when it died may have landed besides, and every
row must be complete.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from store_worker import (  # noqa: E402
    CLASSES,
    CRASH_ANNOTATOR,
    POOL_FINGERPRINT,
    crash_label,
    crash_score,
    crash_state,
    session_pool,
)

import alwidget as al  # noqa: E402
from alwidget.store import open_store  # noqa: E402

WORKER = Path(__file__).parent / "fixtures" / "store_worker.py"


class Zygote:
    """The warm parent process that forks one crash child per trial."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), "zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"zygote died (exit code {self.process.poll()})")
        return line.rstrip("\n")

    def trial(
        self, url: str, trial: int, kill_after: float, wait_for: str = "", mode: str = "store"
    ) -> tuple[list[str], int]:
        """Start a child and SIGKILL it ``kill_after`` seconds after it started (which may
        be while it opens the store), or after its first line starting with ``wait_for``
        (``"L "``: its first label, ``"C "``: its first checkpoint); return its lines."""
        command = {"url": url, "trial": trial, "mode": mode}
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        lines: list[str] = []
        pid = None
        while pid is None or (
            wait_for and not any(line.startswith((wait_for, "E ")) for line in lines)
        ):
            line = self._line()
            if line.startswith(f"pid {trial} "):
                pid = int(line.split()[2])
            else:
                lines.append(line)
        time.sleep(kill_after)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended first (its lines say why); the caller's checks of them fail
        while True:
            line = self._line()
            if line.startswith(f"exit {trial} "):
                return lines, int(line.split()[2])
            lines.append(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def check_trial(url: str, trial: int, lines: list[str]) -> dict[str, int]:
    """Reopen the store and compare it with what the killed child reported."""
    errors = [line for line in lines if line.startswith("E ")]
    assert not errors, errors
    reported: dict[str, list[str]] = {kind: [] for kind in "LURQC"}
    for line in lines:
        kind, value = line.split(" ", 1)
        reported[kind].append(value)
    prefix = f"{trial}-"
    with open_store(url, pool_fingerprint=POOL_FINGERPRINT, classes=CLASSES) as store:
        events = [e for e in store.history() if e.item_key.startswith(prefix)]
        labels = [e for e in events if e.kind == "label"]
        undos = [e for e in events if e.kind == "undo"]
        rounds = [r for r in store.rounds() if r["trial"] == trial]
        current = {k: v for k, v in store.current_labels().items() if k.startswith(prefix)}
        queue = store.load_queue(annotator=CRASH_ANNOTATOR)
        checkpoint = store.load_checkpoint()

    label_keys = [e.item_key for e in labels]
    assert len(label_keys) == len(set(label_keys))
    assert set(reported["L"]) <= set(label_keys)  # nothing that returned was lost
    assert len(set(label_keys) - set(reported["L"])) <= 1  # only the call in flight
    for event in labels:  # and every row is whole
        assert event.label == crash_label(event.item_key)
        assert event.annotator == CRASH_ANNOTATOR
        assert event.model_version == trial and event.strategy == "crash"
        assert event.score == crash_score(event.item_key)
    by_id = {e.event_id: e for e in labels}
    undo_keys = [by_id[e.undoes_event_id].item_key for e in undos]
    assert all(e.item_key == by_id[e.undoes_event_id].item_key for e in undos)
    assert set(reported["U"]) <= set(undo_keys)
    assert len(set(undo_keys) - set(reported["U"])) <= 1
    assert current == {k: crash_label(k) for k in label_keys if k not in undo_keys}

    round_ids = [f"{trial}-{r['i']}" for r in rounds]
    assert set(reported["R"]) <= set(round_ids) and len(set(round_ids) - set(reported["R"])) <= 1
    assert all(r["n_labels"] == r["i"] + 1 for r in rounds)

    if queue and queue[0].startswith(f"{trial}-q"):  # the queue is all of one save, or the last
        i = int(queue[0].split("-q")[1].split("-")[0])
        assert queue == [f"{trial}-q{i}-{j}" for j in range(i % 17)]
        if reported["Q"]:
            assert i >= int(reported["Q"][-1].split("-")[1])
    elif reported["Q"] and int(reported["Q"][-1].split("-")[1]) % 17:
        pytest.fail(f"trial {trial}: saved queue {reported['Q'][-1]} is missing: {queue[:3]}")

    if reported["C"]:
        assert checkpoint is not None
        version, (state,) = checkpoint
        assert version >= int(reported["C"][-1])
    if checkpoint is not None:
        version, (state,) = checkpoint
        expected = crash_state(version)
        assert all(torch.equal(state[name], expected[name]) for name in expected)
    return {kind: len(values) for kind, values in reported.items()}


# A third of the kills count from the child's start (often landing while it opens the
# store), a third from its first label, a third from its first checkpoint (deep in the loop).
WAIT_FOR = ("", "L ", "C ")


def run_crash_trials(
    url: str, n_trials: int, seed: int, max_delay: float = 0.3
) -> list[dict[str, int]]:
    rng = random.Random(seed)
    zygote = Zygote()
    summaries = []
    try:
        for trial in range(n_trials):
            lines, status = zygote.trial(
                url, trial, kill_after=rng.uniform(0.0, max_delay), wait_for=WAIT_FOR[trial % 3]
            )
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, lines[-3:]
            summaries.append(check_trial(url, trial, lines))
    finally:
        zygote.close()
    return summaries


def report(backend: str, summaries: list[dict[str, int]]) -> None:
    labeled = [s["L"] for s in summaries]
    print(
        f"\n{backend}: {len(summaries)} SIGKILL trials, {sum(n == 0 for n in labeled)} killed "
        f"before their first label, {sum(labeled)} labels, {sum(s['U'] for s in summaries)} "
        f"undos, {sum(s['C'] for s in summaries)} checkpoints confirmed and found"
    )


def test_sigkill_never_loses_a_returned_write_sqlite(tmp_path):
    path = tmp_path / "crash.db"
    summaries = run_crash_trials(f"sqlite:///{path}", n_trials=60, seed=20261121)
    report("sqlite", summaries)
    labeled = [s["L"] for s in summaries]
    assert sum(n >= 13 for n in labeled) >= 20  # the trials killed after a checkpoint
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # Every trial's data is still there after all later crashes and reopenings.
    with open_store(path, pool_fingerprint=POOL_FINGERPRINT) as store:
        stored_labels = sum(e.kind == "label" for e in store.history())
    assert stored_labels >= sum(labeled)


@pytest.mark.postgres
def test_sigkill_never_loses_a_returned_write_postgresql(postgres_url):
    summaries = run_crash_trials(postgres_url, n_trials=25, seed=7, max_delay=0.4)
    report("postgresql", summaries)
    assert sum(s["L"] >= 13 for s in summaries) >= 8


def test_sigkill_during_session_labeling_never_loses_a_returned_label(tmp_path):
    """The same through ``Session.label``/``unlabel``: the child resumes the store each
    trial (so every kill also tests resuming after a crash) and labels the next items."""
    url = f"sqlite:///{tmp_path / 'session.db'}"
    rng = random.Random(99)
    labeled: set[str] = set()  # what the store must hold, as reported by the children
    zygote = Zygote()
    n_labels = in_flight = 0
    try:
        for trial in range(50):
            lines, status = zygote.trial(
                url, trial, kill_after=rng.uniform(0.0, 0.3), wait_for=WAIT_FOR[trial % 2],
                mode="session",
            )  # fmt: skip
            assert os.WIFSIGNALED(status), lines[-3:]
            assert not [line for line in lines if line.startswith("E ")], lines
            for line in lines:
                kind, key = line.split(" ", 1)
                (labeled.add if kind == "L" else labeled.discard)(key)
                n_labels += kind == "L"
            with open_store(url) as store:
                current = store.current_labels()
                events = store.history()
            assert all(e.label == crash_label(e.item_key) for e in events if e.kind == "label")
            assert all(label == crash_label(key) for key, label in current.items())
            difference = set(current) ^ labeled
            # Only the one call in flight at the kill may have landed without being reported:
            # a label of a new item, or the undo of the last item reported.
            assert len(difference) <= 1, difference
            if difference - set(current):
                assert lines and lines[-1] == f"L {next(iter(difference))}"
            in_flight += len(difference)
            labeled = set(current)
    finally:
        zygote.close()
    print(f"\nsession: 50 SIGKILL trials, {n_labels} labels reported, {in_flight} in flight")
    assert n_labels >= 100
    resumed = al.Session(session_pool(), "mlp", seed=0, store=url, cv_folds=0)
    assert {str(k): v for k, v in resumed.labels.items()} == current
    resumed.close()
