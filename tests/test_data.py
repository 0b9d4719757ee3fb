"""Pools over every supported item type, the loaders, and bad input."""

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

import alwidget as al
from alwidget.datasets import read_idx


def test_digits_ship_with_a_held_out_split():
    pool = al.datasets.load_digits()
    assert pool.kind == "image" and pool.classes == [str(i) for i in range(10)]
    assert len(pool) + len(pool.test) == 1797
    assert pool.has_targets
    assert pool.inputs([0, 1]).shape == (2, 1, 8, 8)
    assert set(np.unique(pool.test.targets)) == set(range(10))


def test_load_mnist_reads_the_idx_files_and_gz_equals_raw(mnist_root):
    pool = al.datasets.load_mnist(mnist_root)
    assert len(pool) == 60000 and len(pool.test) == 10000
    assert pool.item(0).shape == (28, 28) and pool.item(0).dtype == np.uint8
    assert np.bincount(pool.targets).min() > 5000
    raw = mnist_root / "MNIST" / "raw"
    assert np.array_equal(
        read_idx(raw / "t10k-labels-idx1-ubyte"), read_idx(raw / "t10k-labels-idx1-ubyte.gz")
    )
    small = al.datasets.load_mnist(mnist_root, limit=500, test_limit=100)
    assert len(small) == 500 and len(small.test) == 100


def test_idx_reader_rejects_garbage_and_truncation(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    header = bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big")
    short = tmp_path / "short.gz"
    with gzip.open(short, "wb") as handle:
        handle.write(header + bytes(5))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short)


def test_missing_mnist_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images"):
        al.datasets.load_mnist(tmp_path)


def test_tabular_rows_are_standardised():
    rows = np.random.default_rng(0).normal(5, 3, size=(50, 4))
    pool = al.Pool(rows, targets=np.arange(50) % 2)
    assert pool.kind == "tabular" and pool.classes == ["0", "1"]
    inputs = pool.inputs(np.arange(50)).numpy()
    np.testing.assert_allclose(inputs.mean(axis=0), 0, atol=1e-5)


def test_rgb_images_become_channels_first():
    pool = al.Pool(np.zeros((4, 6, 5, 3), dtype=np.uint8), classes=["a", "b"])
    assert pool.kind == "image" and pool.input_shape == (3, 6, 5)
    assert pool.targets.tolist() == [-1, -1, -1, -1]


def test_text_items_get_tfidf_features_and_string_targets():
    texts = ["good movie", "bad movie", "great film", "awful film", "<img src=x onerror=alert(1)>"]
    pool = al.Pool(texts, targets=["pos", "neg", "pos", "neg", None], ids=list("abcde"))
    assert pool.kind == "text" and pool.classes == ["neg", "pos"]
    assert pool.targets.tolist() == [1, 0, 1, 0, -1]
    assert pool.item("e") == texts[4]
    assert pool.inputs([0, 1]).shape[0] == 2


def test_image_files_and_a_corrupt_one(tmp_path):
    paths = []
    for index in range(3):
        path = tmp_path / f"img{index}.png"
        Image.fromarray((np.random.default_rng(index).random((9, 7)) * 255).astype(np.uint8)).save(
            path
        )
        paths.append(str(path))
    pool = al.Pool(paths, classes=["x", "y"])
    assert pool.kind == "image" and pool.input_shape == (1, 9, 7)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="broken.png"):  # found when the pool is built
        al.Pool(paths + [str(broken)], classes=["x", "y"])


class TinyDataset:
    """Duck-typed torch Dataset: only __len__ and __getitem__."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return torch.full((2, 4, 4), float(index)), index % 2


def test_any_torch_dataset_by_duck_typing():
    pool = al.Pool(TinyDataset(), classes=["even", "odd"])
    assert pool.kind == "image" and pool.input_shape == (2, 4, 4)
    assert float(pool.inputs([3])[0, 0, 0, 0]) == 3.0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(items=np.zeros((0, 3)), classes=["a", "b"]), ValueError, "empty"),
        (dict(items=np.array([[1.0, np.nan]]), classes=["a", "b"]), ValueError, "NaN"),
        (dict(items=np.zeros((2, 3, 3, 3, 3)), classes=["a", "b"]), ValueError, "shape"),
        (dict(items=np.zeros((3, 2)), targets=[0, 1]), ValueError, "2 targets for 3 items"),
        (
            dict(items=np.zeros((2, 2)), targets=["a", "zebra"], classes=["a", "b"]),
            ValueError,
            "zebra",
        ),
        (dict(items=np.zeros((2, 2)), ids=[1, 1], classes=["a", "b"]), ValueError, "unique"),
        (dict(items=np.zeros((2, 2))), ValueError, "classes"),
        (dict(items=object(), classes=["a"]), TypeError, "unsupported"),
        (dict(items=["missing.png"], classes=["a"]), ValueError, "not found"),
    ],
)
def test_bad_pools_name_the_problem(kwargs, error, message):
    items = kwargs.pop("items")
    with pytest.raises(error, match=message):
        al.Pool(items, **kwargs)


def test_repeated_pool_triples_items_with_noise():
    base = al.Pool(
        np.random.default_rng(0).random((5, 4, 4)).astype(np.float32), targets=[0, 1, 0, 1, 0]
    )
    repeated = al.datasets.repeated(base, repeats=3, noise_std=0.1)
    assert len(repeated) == 15 and repeated.targets.tolist() == [0, 1, 0, 1, 0] * 3
    assert not np.array_equal(repeated.item(0), repeated.item(5))
    assert np.abs(repeated.item(0) - repeated.item(5)).mean() < 0.3


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".flac", ".mp4", ".pdf", ".dcm", ".nii.gz"])
def test_media_file_paths_are_not_taken_for_texts(suffix):
    paths = [f"recordings/clip{index}{suffix}" for index in range(3)]
    with pytest.raises(al.kinds.ItemKindError) as caught:
        al.Pool(paths, classes=["a", "b"])
    message = str(caught.value)
    assert f"items[0] = 'recordings/clip0{suffix}'" in message
    assert "alwidget.kinds.register" in message and "kind='text'" in message
    assert isinstance(caught.value, (ValueError, al.AlwidgetError))


def test_media_error_names_the_first_media_item_among_texts(tmp_path):
    recording = tmp_path / "take 2.wav"  # a blank in the name: an existing file still counts
    recording.write_bytes(b"RIFF")
    with pytest.raises(al.kinds.ItemKindError, match=r"items\[1\] = .*take 2\.wav"):
        al.Pool(["a fine review", str(recording), "x.mp3"], classes=["a", "b"])
    with pytest.raises(al.kinds.ItemKindError, match=r"items\[0\]"):
        al.Pool([tmp_path / "a.flac", tmp_path / "b.flac"], classes=["a", "b"])


def test_texts_that_merely_mention_files_stay_texts_and_kind_text_overrides():
    mentions = al.Pool(["I saved it as photo.jpg", "see the notes.pdf file"], classes=["a", "b"])
    assert mentions.kind == "text"
    forced = al.Pool(["song.wav", "other.wav"], classes=["a", "b"], kind="text")
    assert forced.kind == "text" and forced.item_kind is al.kinds.get("text")
    assert forced.input_shape[0] > 0


def test_kind_argument_names_unknown_and_unsuitable_kinds():
    with pytest.raises(al.kinds.ItemKindError, match="unknown item kind 'audio'.*image, text"):
        al.Pool(np.zeros((3, 2)), classes=["a", "b"], kind="audio")
    with pytest.raises(
        al.kinds.ItemKindError, match="image item kind reads .* got a list of 2 str"
    ):
        al.Pool(["a", "b"], classes=["a", "b"], kind="image")
    tabular = al.Pool(np.zeros((4, 8, 8)).reshape(4, 64), classes=["a", "b"], kind="tabular")
    assert tabular.kind == "tabular" and tabular.input_shape == (64,)


def test_held_out_items_must_be_of_the_pool_kind():
    with pytest.raises(al.kinds.ItemKindError, match="test_items must be tabular items"):
        al.Pool(np.zeros((4, 3)), targets=[0, 1, 0, 1], test_items=["x", "y"], test_targets=[0, 1])


class HalfKind:
    name = "half"
    description = "nothing"

    def detect(self, items):
        return False


def test_registering_checks_the_kind():
    with pytest.raises(al.kinds.ItemKindError, match="lacks read, input_encoder.*hover_texts"):
        al.kinds.register(HalfKind())
    with pytest.raises(al.kinds.ItemKindError, match="already registered"):
        al.kinds.register(al.kinds.get("image"))
    with pytest.raises(al.kinds.ItemKindError, match="cannot be unregistered"):
        al.kinds.unregister("text")
    assert [kind.name for kind in al.kinds.registered()] == ["image", "text", "tabular"]


def test_default_models_come_from_the_kind():
    assert al.kinds.get("image").default_model((1, 8, 8)) == "small_cnn"
    assert al.kinds.get("image").default_model((64,)) == "mlp"
    assert al.kinds.get("text").default_model((4096,)) == "mlp"
    assert al.kinds.get("tabular").default_model((3,)) == "mlp"
