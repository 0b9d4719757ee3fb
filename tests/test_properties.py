"""Issue 13, property-based: generated bad values at every public entry point.

Pool(...), Session(...), the session's label/unlabel/add_class/query/retrain, TrainConfig(...),
store URLs and files, and the command line's arguments are fed values drawn by hypothesis
(wrong types, wrong lengths, NaN, sets, huge and negative numbers, random text). Whatever
comes in, only an alwidget error (or argparse's exit 2 with the usage) may come out: never a
raw numpy/torch/scikit-learn/SQLAlchemy traceback, never a hang, and a failed call never
changes a label.
"""

import contextlib
import io
import math
import os
import resource
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import alwidget as al
from alwidget.errors import AlwidgetError

N_ROWS = 30
WIDTH = 4
SECONDS_PER_EXAMPLE = 30  # far above any example's cost: reaching it means a hang
EXTRA_MEMORY_PER_EXAMPLE = 3 * 2**30  # bytes; a 30-row pool needs a tiny fraction of this

pytestmark = pytest.mark.filterwarnings("ignore")
examples = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples on every run, so a failure reproduces
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _address_space() -> int:
    """Bytes of virtual memory this process maps now."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def no_hang(seconds: int = SECONDS_PER_EXAMPLE):
    """Fail the example (instead of the test run) when a call does not return in time or
    reaches for more memory than a small pool could need, rather than exhausting a machine
    shared with others."""

    def interrupt(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, interrupt)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + EXTRA_MEMORY_PER_EXAMPLE
    if hard == resource.RLIM_INFINITY or cap < hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def alwidget_errors_only(call, *args, **kwargs):
    """``call(...)``'s result, or ``None`` when it raised an alwidget error; any other
    exception fails the example with the raw error as its cause."""
    with no_hang():
        try:
            return call(*args, **kwargs)
        except AlwidgetError:
            return None
        except Exception as error:
            raise AssertionError(
                f"a raw {type(error).__module__}.{type(error).__name__} reached the user: {error}"
            ) from error


def rows(count=N_ROWS, width=WIDTH):
    return np.random.default_rng(count * 31 + width).normal(size=(count, width)).astype(np.float32)


def good_targets(count=N_ROWS):
    return np.arange(count) % 2


# ------------------------------------------------------------------------- value pools
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(max_magnitude=10),
    st.text(max_size=6),
    st.binary(max_size=4),
)
containers = st.one_of(
    st.lists(scalars, max_size=N_ROWS + 2),
    st.sets(st.integers(-3, 40), max_size=N_ROWS + 2),
    st.frozensets(st.text(max_size=2), max_size=4),
    st.dictionaries(st.text(max_size=3), scalars, max_size=4),
    st.tuples(scalars, scalars),
    st.builds(lambda n: iter(range(n)), st.integers(0, N_ROWS)),  # an iterator with no length
)


def _array(kind: str, count: int, width: int):
    array = rows(count, max(width, 0))
    if kind == "nan" and array.size:
        array[count // 2, 0] = np.nan
    if kind == "inf" and array.size:
        array[0, -1] = np.inf
    if kind == "complex":
        return array.astype(np.complex64) * 1j
    if kind == "object":
        return array.astype(object)
    if kind == "bool":
        return array > 0
    if kind == "int":
        return (array * 10).astype(np.int64)
    if kind == "1d":
        return array[:, 0]
    if kind == "3d":
        return array.reshape(count, width, 1)
    if kind == "text":
        return array.astype(str)
    return array


arrays = st.builds(
    _array,
    st.sampled_from(
        ["plain", "nan", "inf", "complex", "object", "bool", "int", "1d", "3d", "text"]
    ),
    st.sampled_from([0, 1, 5, N_ROWS - 1, N_ROWS, N_ROWS + 1]),
    st.sampled_from([0, 1, 3, WIDTH, WIDTH + 1]),
)
ragged = st.lists(
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=WIDTH + 1),
    min_size=1,
    max_size=N_ROWS,
)
texts = st.lists(st.text(max_size=12), min_size=1, max_size=N_ROWS)


class RaisingDataset:
    """A torch-style Dataset: item ``bad`` raises, the others are rows of ``width``."""

    def __init__(self, bad: int, width: int):
        self.bad, self.width = bad, width

    def __len__(self):
        return N_ROWS

    def __getitem__(self, index):
        if index == self.bad:
            raise KeyError(f"record {index}")
        return torch.ones(self.width + index % 2) * index, index % 2


datasets = st.builds(RaisingDataset, st.integers(-1, N_ROWS - 1), st.integers(0, 3))
anything = st.one_of(scalars, containers, arrays, ragged, texts, datasets)


def _raising_feature(item):
    raise RuntimeError("no features here")


features_values = st.one_of(
    st.none(),
    arrays,
    ragged,
    containers,
    st.just(_raising_feature),
    st.just(lambda item: np.zeros(3)),
    st.just(lambda item: "text"),
)


# ------------------------------------------------------------------------------ Pool
POOL_VALUES = {
    "items": anything,
    "targets": st.one_of(st.none(), anything),
    "classes": st.one_of(st.none(), anything),
    "ids": anything,
    "features": features_values,
    "test_items": st.one_of(st.none(), anything),
    "test_targets": anything,
    "kind": st.one_of(scalars, st.sampled_from(["image", "text", "tabular", "video"])),
}


def some_of(values: dict, most: int = 3):
    """Dicts of 1 to ``most`` of the keys of ``values``, each with a drawn value: the rest
    of the arguments stay valid, so each bad value gets past the others to its own check."""
    return st.dictionaries(
        st.sampled_from(sorted(values)), st.none(), min_size=1, max_size=most
    ).flatmap(lambda keys: st.fixed_dictionaries({key: values[key] for key in keys}))


@examples
@given(arguments=some_of(POOL_VALUES))
def test_pool_takes_anything_and_refuses_with_alwidget_errors_only(arguments):
    valid = {
        "items": rows(),
        "targets": good_targets(),
        "test_items": rows(6),
        "test_targets": good_targets(6),
    }
    if "test_items" in arguments and "test_targets" not in arguments:
        valid.pop("test_targets")
    pool = alwidget_errors_only(al.Pool, **(valid | arguments))
    if pool is None:
        return
    # A pool that was accepted must work later, or fail as clearly.
    alwidget_errors_only(pool.inputs, np.arange(len(pool)))
    alwidget_errors_only(lambda: pool.test)
    alwidget_errors_only(lambda: pool.input_shape)


# ---------------------------------------------------------------------------- Session
def fast_config():
    return al.TrainConfig(min_steps=3, max_steps=3, max_epochs=1)


def tabular_pool():
    return al.Pool(rows(), targets=good_targets())


def no_dropout_model():
    return nn.Sequential(nn.Linear(WIDTH, 2))


SESSION_VALUES = {
    "seed": st.one_of(scalars, st.integers(-(2**40), 2**80)),
    "batch_size": scalars,
    "ensemble": scalars,
    "mc_samples": scalars,
    "score_subset": scalars,
    "chunk_size": scalars,
    "cv_folds": scalars,
    "track_coverage": scalars,
    "annotator": scalars,
    "device": st.one_of(
        scalars, st.sampled_from(["cuda", "cuda:3", "mps", "meta", "xpu", "cpu:0", "tpu", ""])
    ),
    "strategy": st.one_of(scalars, st.sampled_from(["bald", "batchbald", "badge", "coreset"])),
    "model": st.one_of(
        scalars,
        st.sampled_from(["small_cnn", "gal_cnn", "resnet"]),
        st.just(nn.Sequential(nn.Linear(WIDTH, 2)).double()),
        st.just(nn.Sequential(nn.Linear(WIDTH + 1, 2))),
        st.just(nn.Sequential(nn.Linear(WIDTH, 3))),
        st.just(nn.Identity()),
        st.just(no_dropout_model),
        st.just(lambda: "not a module"),
    ),
    "train_config": st.one_of(scalars, containers),
    "team": scalars,
    "overlap": scalars,
    "lease_seconds": scalars,
}
session_arguments = some_of(SESSION_VALUES)


@examples
@given(arguments=session_arguments)
def test_session_takes_bad_arguments_and_refuses_with_alwidget_errors_only(arguments):
    base = {"train_config": fast_config(), "cv_folds": 0, "track_coverage": False, "store": False}
    session = alwidget_errors_only(al.Session, tabular_pool(), **(base | arguments))
    if session is None:
        return
    alwidget_errors_only(session.query, 2)


@examples
@given(model=SESSION_VALUES["model"], strategy=SESSION_VALUES["strategy"])
def test_session_models_refuse_with_alwidget_errors_only(model, strategy):
    session = alwidget_errors_only(
        al.Session, tabular_pool(), model, strategy=strategy, train_config=fast_config(),
        cv_folds=0, track_coverage=False, store=False,
    )  # fmt: skip
    if session is not None:
        alwidget_errors_only(session.query, 2)


# ----------------------------------------------------------- methods of one session
@pytest.fixture(scope="module")
def labeling_session():
    session = al.Session(
        tabular_pool(), train_config=fast_config(), cv_folds=0, track_coverage=False, store=False
    )
    session.label([0, 1, 2, 3], ["0", "1", "0", "1"])
    return session


ids = st.one_of(scalars, containers, st.integers(-2, N_ROWS + 2), st.just(np.arange(3)))
labels = st.one_of(scalars, containers, st.sampled_from(["0", "1", 0, 1, 2, -1, "2"]))


def reset_to(session, before: dict) -> None:
    """Undo what a call that succeeded added, so examples do not pile up labels."""
    for item_id in list(session.labels):
        if item_id not in before:
            session.unlabel(item_id)


def check_method_call(session, call):
    """``call()`` raises only alwidget errors, and a raising call changes no label."""
    before = session.labels
    version = session.model_version
    with no_hang():
        try:
            call()
        except AlwidgetError:
            assert session.labels == before, "a refused call changed the labels"
            assert session.model_version == version
            return
        except Exception as error:
            raise AssertionError(
                f"a raw {type(error).__module__}.{type(error).__name__} reached the user: {error}"
            ) from error
    reset_to(session, before)


@examples
@given(item_ids=ids, item_labels=labels)
def test_label_and_unlabel_refuse_cleanly_and_keep_the_labels(
    labeling_session, item_ids, item_labels
):
    check_method_call(labeling_session, lambda: labeling_session.label(item_ids, item_labels))
    if not isinstance(item_ids, (int, np.integer)) or int(item_ids) not in (0, 1, 2, 3):
        check_method_call(labeling_session, lambda: labeling_session.unlabel(item_ids))


@examples
@given(name=st.one_of(scalars, containers))
def test_add_class_refuses_cleanly_and_keeps_the_labels(labeling_session, name):
    classes = list(labeling_session.classes)
    check_method_call(labeling_session, lambda: labeling_session.add_class(name))
    added = labeling_session.classes[len(classes) :]
    if not isinstance(name, (str, int)) or isinstance(name, bool):
        assert added == [], f"add_class({name!r}) created the classes {added}"
    assert all(isinstance(new, str) and new.strip() for new in added)


@examples
@given(size=st.one_of(scalars, containers))
def test_query_refuses_cleanly_and_keeps_the_labels(labeling_session, size):
    check_method_call(labeling_session, lambda: labeling_session.query(size))


@examples
@given(
    method=st.sampled_from(
        ["prioritize", "set_strategy", "score_items", "predict", "coverage", "embeddings"]
    ),
    first=st.one_of(scalars, containers, st.sampled_from(["bald", "entropy", "random"])),
    second=scalars,
)
def test_other_session_methods_refuse_cleanly(labeling_session, method, first, second):
    calls = {
        "prioritize": lambda: labeling_session.prioritize(first),
        "set_strategy": lambda: labeling_session.set_strategy(first, second),
        "score_items": lambda: labeling_session.score_items(first),
        "predict": lambda: labeling_session.predict(first, mc_samples=second),
        "coverage": lambda: labeling_session.coverage(first, n_farthest=second),
        "embeddings": lambda: labeling_session.embeddings(first),
    }
    try:
        check_method_call(labeling_session, calls[method])
    finally:
        labeling_session.set_strategy("entropy")
        labeling_session.book.priority.clear()


TRAIN_FIELDS = [
    "max_epochs",
    "min_steps",
    "max_steps",
    "batch_size",
    "lr",
    "weight_decay",
    "balanced",
    "validation_fraction",
    "min_labels_for_validation",
    "patience",
    "warm_start",
    "augment",
]
train_values = st.one_of(scalars, st.sampled_from(["auto", "affine", "none", "flip"]), containers)


@examples
@given(field=st.sampled_from(TRAIN_FIELDS), value=train_values, callback=scalars)
def test_retrain_refuses_cleanly_and_keeps_labels_and_model(
    labeling_session, field, value, callback
):
    config = fast_config()
    setattr(config, field, value)  # changed after construction: checked at retrain
    labeling_session.train_config = config
    try:
        check_method_call(labeling_session, labeling_session.retrain)
        check_method_call(labeling_session, lambda: labeling_session.retrain(progress=callback))
    finally:
        labeling_session.train_config = fast_config()


# --------------------------------------------------------------------------- TrainConfig
@examples
@given(st.dictionaries(st.sampled_from(TRAIN_FIELDS), train_values, max_size=4))
def test_train_config_refuses_with_alwidget_errors_only(values):
    config = alwidget_errors_only(al.TrainConfig, **values)
    if config is None:
        return
    # Accepted settings are usable ones.
    assert config.batch_size >= 1 and 1 <= config.max_steps and config.min_steps <= config.max_steps
    assert config.lr > 0 and math.isfinite(config.lr) and 0 <= config.validation_fraction < 1
    if config.max_steps <= 50 and config.batch_size <= 256 and config.max_epochs <= 1000:
        from alwidget.training import train_model

        alwidget_errors_only(
            train_model,
            nn.Sequential(nn.Linear(WIDTH, 2)),
            torch.from_numpy(rows()),
            good_targets(),
            config,
            seed=0,
            device=torch.device("cpu"),
        )


# ------------------------------------------------------------------ store URLs and files
@pytest.fixture(scope="module")
def store_folder():
    with tempfile.TemporaryDirectory(prefix="alwidget-store-props-") as folder:
        yield Path(folder)


@contextlib.contextmanager
def working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


scheme_urls = st.builds(
    lambda scheme, rest: f"{scheme}://{rest}",
    st.sampled_from(["sqlite", "postgresql", "postgres", "mysql", "http", "file", "bogus", ""]),
    st.sampled_from(["", "/", "//", "nobody@127.0.0.1:1/x", ":memory:", "/a/b/c.db", "?x=1"]),
)
store_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(max_size=4),
    st.lists(st.text(max_size=3), max_size=2),
    scheme_urls,
    st.sampled_from(["", ".", "/", "/nonexistent/folder/labels.db", "sub/deeper/labels.db"]),
)


@examples
@given(store=store_values)
def test_store_urls_refuse_with_alwidget_errors_only(store_folder, store):
    with working_directory(store_folder):
        session = alwidget_errors_only(al.Session, tabular_pool(), store=store, cv_folds=0)
    if session is not None:
        session.close()


@examples
@given(content=st.binary(min_size=1, max_size=256), as_folder=st.booleans())
def test_store_files_that_are_no_store_refuse_with_alwidget_errors_only(
    store_folder, content, as_folder
):
    path = Path(tempfile.mkdtemp(dir=store_folder)) / "labels.db"
    if as_folder:
        path.mkdir()
    else:
        path.write_bytes(content)
    session = alwidget_errors_only(al.Session, tabular_pool(), store=str(path), cv_folds=0)
    if session is not None:
        session.close()


# ------------------------------------------------------------------------------- the CLI
class Accepted(Exception):
    """Raised instead of running the loop: the arguments got past every check."""


def _accept(*args, **kwargs):
    raise Accepted


CLI_VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(str),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=0, max_size=8),
    st.sampled_from(["", "-1", "0", "1e3", "nan", "-h", "--json", "mnist", "digits"]),
)
SIMULATE_FLAGS = [
    "--dataset", "--data-root", "--limit", "--test-limit", "--strategy", "--model", "--initial",
    "--batch", "--rounds", "--seed", "--mc-samples", "--ensemble", "--score-subset",
    "--max-steps", "--augment", "--threads",
]  # fmt: skip
BENCH_FLAGS = [
    "--dataset", "--data-root", "--strategies", "--seeds", "--budget", "--initial", "--batch",
    "--mc-samples", "--score-subset", "--limit", "--test-limit", "--train-steps", "--warm-steps",
    "--train-batch", "--augment", "--lr", "--weight-decay", "--jobs", "--out",
]  # fmt: skip
DEMO_FLAGS = ["--strategies", "--rounds", "--batch", "--seed"]
command_lines = st.one_of(
    *[
        st.tuples(
            st.just(command),
            st.lists(st.tuples(st.sampled_from(flags), CLI_VALUES), min_size=1, max_size=3),
        )
        for command, flags in (
            ("simulate", SIMULATE_FLAGS),
            ("bench", BENCH_FLAGS),
            ("demo", DEMO_FLAGS),
        )
    ]
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(command_line=command_lines)
def test_cli_arguments_exit_2_with_usage_or_pass(monkeypatch, command_line):
    from alwidget.cli import main

    command, pairs = command_line
    argv = [command]
    if command == "bench":
        argv += ["--data-root", os.path.dirname(__file__), "--out", tempfile.gettempdir()]
    for flag, value in pairs:
        argv.append(f"{flag}={value}")
    # Past the checks the loop would run: stop there instead.
    monkeypatch.setattr("alwidget.experiments.simulate.run_oracle", _accept)
    monkeypatch.setattr("alwidget.experiments.bench_cli.run_bench", _accept)
    threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        with no_hang(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
    except Accepted:
        return
    except SystemExit as exit_info:
        if exit_info.code == 0:  # "-h" as a value asks argparse for the help
            assert "usage:" in out.getvalue()
            return
        assert exit_info.code == 2, (argv, err.getvalue())
        assert "usage: python -m alwidget" in err.getvalue(), (argv, err.getvalue())
        return
    except Exception as error:
        raise AssertionError(
            f"{argv}: a raw {type(error).__module__}.{type(error).__name__} reached the user: "
            f"{error}"
        ) from error
    finally:
        torch.set_num_threads(threads)
    raise AssertionError(f"{argv}: main() returned instead of running or exiting")
