"""Image files: read by mode without destroying them, and bad files found when a pool is built.

Every file here is a real image written with Pillow into ``tmp_path``.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from fixtures.widget_sessions import FAST_TRAINING
from PIL import Image

import alwidget as al
from alwidget.kinds.items import UnreadableFileError
from alwidget.widget.render import render_pool_item


def save(path, array, mode=None):
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def grey_files(folder, count, size=(12, 12), seed=0):
    rng = np.random.default_rng(seed)
    return [
        save(folder / f"img{index:03d}.png", rng.integers(0, 256, size).astype(np.uint8))
        for index in range(count)
    ]


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def decoded(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


# ---------------------------------------------------------------- reading by mode
def test_16_bit_tiff_keeps_its_values_and_inputs_are_not_saturated(tmp_path):
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 65536, (16, 16)).astype(np.uint16) for _ in range(3)]
    paths = [save(tmp_path / f"deep{index}.tif", image) for index, image in enumerate(pixels)]
    pool = al.Pool([str(path) for path in paths], classes=["a", "b"])
    assert Image.open(paths[0]).mode == "I;16"
    item = pool.item(0)
    assert item.dtype == np.uint16 and np.array_equal(item, pixels[0])
    inputs = pool.inputs([0, 1, 2]).numpy()[:, 0]
    # Old reading made every pixel 255; the model inputs must follow the file's values.
    assert np.corrcoef(inputs.ravel(), np.stack(pixels).ravel().astype(float))[0, 1] > 0.999


def test_12_bit_png_is_not_clipped_and_shows_its_whole_range(tmp_path):
    ramp = (np.arange(256, dtype=np.uint16) * 16).reshape(16, 16)  # 0 … 4080: 12-bit data
    path = save(tmp_path / "twelve.png", ramp)
    other = save(tmp_path / "other.png", ramp[::-1].copy())
    assert Image.open(path).mode == "I;16"
    pool = al.Pool([str(path), str(other)], classes=["a", "b"])
    assert np.array_equal(pool.item(0), ramp)
    inputs = pool.inputs([0]).numpy().ravel()
    # Clipping to 8 bits left 93% of pixels at one value; now every pixel keeps its own.
    assert len(np.unique(inputs)) == 256
    shown = decoded(render_pool_item(pool, 0).focus_png)
    assert shown.min() == 0 and shown.max() == 255  # stretched to its range, not 6% grey


def test_float_tiff_in_unit_range_stays_float(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.random((10, 10)).astype(np.float32)
    path = save(tmp_path / "float.tif", pixels)
    assert Image.open(path).mode == "F"
    pool = al.Pool([str(path), str(save(tmp_path / "b.tif", pixels[::-1].copy()))], classes=["a"])
    item = pool.item(0)
    assert item.dtype == np.float32 and np.array_equal(item, pixels)
    assert np.ptp(pool.inputs([0]).numpy()) > 1  # was all 0
    shown = decoded(render_pool_item(pool, 0).focus_png)
    assert 200 < shown.max() and shown.min() < 50  # intensities in [0, 1] are shown as such


def test_a_float_file_with_nan_is_refused_naming_it(tmp_path):
    pixels = np.ones((6, 6), np.float32)
    pixels[2, 3] = np.nan
    bad = save(tmp_path / "nan.tif", pixels)
    good = save(tmp_path / "good.tif", np.ones((6, 6), np.float32))
    with pytest.raises(UnreadableFileError, match=r"nan\.tif: corrupt .*1 NaN/inf pixels"):
        al.Pool([str(good), str(bad)], classes=["a"])


def test_transparency_is_composited_on_white_with_a_warning(tmp_path):
    grey_alpha = np.zeros((4, 4, 2), np.uint8)
    grey_alpha[..., 0] = 100
    grey_alpha[0, :, 1] = 255  # opaque row: its own grey
    grey_alpha[1, :, 1] = 0  # transparent row: the white background
    grey_alpha[2:, :, 1] = 128  # half: a blend
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (200, 10, 10)
    rgba[..., 3] = 255
    rgba[3, 3, 3] = 0
    paths = [save(tmp_path / "la.png", grey_alpha, "LA"), save(tmp_path / "rgba.png", rgba)]
    with pytest.warns(UserWarning, match=r"2 of 2 image files have transparency.*on white"):
        pool = al.Pool([str(path) for path in paths], classes=["a"])
    la = pool.item(0)  # read as RGB: the pool has a colour file
    assert la.shape == (4, 4, 3) and (la[0] == 100).all() and (la[1] == 255).all()
    assert (la[2] == round(100 * 128 / 255 + 255 * 127 / 255)).all()
    colour = pool.item(1)
    assert tuple(colour[0, 0]) == (200, 10, 10) and tuple(colour[3, 3]) == (255, 255, 255)


def test_greyscale_palette_and_rgb_files_mix_as_rgb(tmp_path):
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (16, 16)).astype(np.uint8)
    rgb = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    palette = Image.fromarray(rgb).quantize(8)
    palette.save(tmp_path / "palette.gif")
    paths = [
        save(tmp_path / "grey.png", grey),
        save(tmp_path / "rgb.png", rgb),
        tmp_path / "palette.gif",
    ]
    pool = al.Pool([str(path) for path in paths], targets=[0, 1, 0])
    assert pool.inputs([0, 1, 2]).shape == (3, 3, 16, 16)  # was "image files differ in size"
    assert np.array_equal(pool.item(0), np.repeat(grey[..., None], 3, axis=-1))
    assert np.array_equal(pool.item(1), rgb)
    assert np.array_equal(pool.item(2), np.asarray(palette.convert("RGB")))
    # Without a colour file the pool stays greyscale.
    assert al.Pool([str(paths[0])], classes=["a"]).item(0).shape == (16, 16)


def test_8_and_16_bit_files_share_one_intensity_scale(tmp_path):
    paths = [
        save(tmp_path / "dark.png", np.full((8, 8), 51, np.uint8)),  # 20% grey, 8 bits
        save(tmp_path / "bright.png", np.full((8, 8), 52428, np.uint16)),  # 80%, 16 bits
        save(tmp_path / "middle.png", np.full((8, 8), 128, np.uint8)),  # 50%, 8 bits
    ]
    inputs = al.Pool([str(path) for path in paths], classes=["a"]).inputs([0, 1, 2]).numpy()
    dark, bright, middle = (float(image.mean()) for image in inputs)
    # Middle grey lies halfway between 20% and 80% grey (clipping 16 bits to 255 put it
    # 38% of the way).
    assert (middle - dark) / (bright - dark) == pytest.approx((128 / 255 - 0.2) / 0.6, abs=1e-3)


def test_files_of_different_sizes_are_named(tmp_path):
    paths = grey_files(tmp_path, 3) + [save(tmp_path / "wide.png", np.zeros((12, 20), np.uint8))]
    pool = al.Pool([str(path) for path in paths], classes=["a"])
    with pytest.raises(al.kinds.ItemKindError, match=r"3 are 12×12 .*1 are 12×20 \(e\.g\. .*wide"):
        pool.inputs([0])


# ------------------------------------------------------------------------ bad files
def bad_collection(folder):
    """Good files with every kind of bad one among them (positions 2, 4, 5, 7)."""
    paths = grey_files(folder, 8)
    truncate(paths[2])
    paths[4].write_text("not a picture")
    paths[5].unlink()
    jpeg = folder / "cut.jpg"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)).save(jpeg)
    truncate(jpeg, 0.7)
    paths[7] = jpeg
    return paths


def test_bad_files_are_all_reported_in_one_error_when_the_pool_is_built(tmp_path):
    paths = bad_collection(tmp_path)
    with pytest.raises(UnreadableFileError) as raised:
        al.Pool([str(path) for path in paths], classes=["a"])
    message = str(raised.value)
    assert message.startswith("items: 4 of 8 files cannot be read")
    assert f"{paths[2]}: truncated" in message
    assert f"{paths[4]}: not an image Pillow can identify" in message
    assert f"{paths[5]}: file not found" in message
    assert f"{paths[7]}: truncated" in message  # a JPEG cut short is decoded, not just opened
    assert 'on_error="skip"' in message
    assert [bad.path for bad in raised.value.files] == [paths[i] for i in (2, 4, 5, 7)]
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, al.AlwidgetError)


def test_files_checked_on_the_reader_threads_are_reported_in_pool_order(tmp_path):
    # 8 + 24 files: above the size from which files are checked on the reader threads.
    (tmp_path / "bad").mkdir()
    bad = bad_collection(tmp_path / "bad")
    (tmp_path / "good").mkdir()
    good = grey_files(tmp_path / "good", 24)
    paths = good[:10] + bad + good[10:]
    with pytest.raises(UnreadableFileError) as raised:
        al.Pool([str(path) for path in paths], classes=["a"])
    assert str(raised.value).startswith("items: 4 of 32 files cannot be read")
    assert [bad_file.path for bad_file in raised.value.files] == [bad[i] for i in (2, 4, 5, 7)]


def test_a_long_list_of_bad_files_names_ten_and_counts_the_rest(tmp_path):
    paths = grey_files(tmp_path, 30)
    for path in paths[:25]:
        truncate(path)
    with pytest.raises(UnreadableFileError) as raised:
        al.Pool([str(path) for path in paths], classes=["a"])
    message = str(raised.value)
    assert "25 of 30 files" in message and "... and 15 more" in message
    assert message.count(": truncated") == 10 and len(raised.value.files) == 25


def test_skip_drops_bad_files_with_their_ids_targets_and_features(tmp_path):
    paths = bad_collection(tmp_path)
    targets = ["cat", "dog", "cat", "dog", "bird", "cat", "dog", "cat"]
    features = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    with pytest.warns(UserWarning, match=r"skipped 4 of 8 files .*pool\.skipped"):
        pool = al.Pool(
            [str(path) for path in paths],
            targets=targets,
            ids=[f"id{index}" for index in range(8)],
            features=features,
            on_error="skip",
        )
    assert [bad.path for bad in pool.skipped] == [paths[i] for i in (2, 4, 5, 7)]
    assert pool.skipped[2].reason == "file not found"
    kept = [0, 1, 3, 6]
    assert pool.ids == [f"id{index}" for index in kept]
    # Classes come from every given target: "bird" stays although its only file was skipped.
    assert pool.classes == ["bird", "cat", "dog"]
    assert [pool.classes[t] for t in pool.targets] == [targets[index] for index in kept]
    assert [pool.item_path(item_id) for item_id in pool.ids] == [paths[i] for i in kept]
    assert pool.inputs([0, 1, 2, 3]).shape == (4, 3)
    raw_rows = (pool.inputs([0, 1, 2, 3]).numpy()[:, 0] * np.std(kept)) + np.mean(kept)
    assert np.allclose(raw_rows, kept, atol=1e-4)  # each row stays with its file


def test_default_ids_are_given_positions_so_a_skipped_file_leaves_a_gap(tmp_path):
    paths = grey_files(tmp_path, 5)
    truncate(paths[1])
    with pytest.warns(UserWarning, match="skipped 1 of 5"):
        pool = al.Pool([str(path) for path in paths], targets=[0, 1, 0, 1, 0], on_error="skip")
    assert pool.ids == [0, 2, 3, 4] and pool.item_path(3) == paths[3]
    assert pool.targets.tolist() == [0, 0, 1, 0]


def test_on_error_is_checked_and_every_file_bad_is_an_error(tmp_path):
    paths = grey_files(tmp_path, 2)
    with pytest.raises(ValueError, match='on_error must be "raise" or "skip"'):
        al.Pool([str(path) for path in paths], classes=["a"], on_error="ignore")
    for path in paths:
        truncate(path)
    with pytest.raises(UnreadableFileError, match="(?s)2 of 2 files .*No file is left"):
        al.Pool([str(path) for path in paths], classes=["a"], on_error="skip")


def test_held_out_files_are_checked_and_follow_the_pools_channels(tmp_path):
    pool_paths = grey_files(tmp_path, 4)
    (tmp_path / "test").mkdir()
    rng = np.random.default_rng(4)
    test_paths = [
        save(tmp_path / "test" / "colour.png", rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)),
        truncate(save(tmp_path / "test" / "cut.png", np.zeros((12, 12), np.uint8))),
        save(tmp_path / "test" / "grey.png", np.zeros((12, 12), np.uint8)),
    ]
    with pytest.raises(UnreadableFileError, match=r"(?s)^test_items: 1 of 3 files .*cut\.png"):
        al.Pool(
            [str(path) for path in pool_paths],
            targets=[0, 1, 0, 1],
            test_items=[str(path) for path in test_paths],
            test_targets=[0, 1, 1],
        )
    with pytest.warns(UserWarning, match="test_items: skipped 1 of 3"):
        pool = al.Pool(
            [str(path) for path in pool_paths],
            targets=[0, 1, 0, 1],
            test_items=[str(path) for path in test_paths],
            test_targets=[0, 1, 1],
            on_error="skip",
        )
    assert pool.held_out_pool.skipped[0].path == test_paths[1]
    assert pool.test.targets.tolist() == [0, 1]
    # A colour file in the held-out split makes the pool colour too: one input shape.
    assert pool.test.inputs.shape[1:] == pool.input_shape == (3, 12, 12)


def test_a_file_broken_or_deleted_after_the_pool_was_built_is_named(tmp_path):
    paths = grey_files(tmp_path, 4)
    pool = al.Pool([str(path) for path in paths], classes=["a"])
    truncate(paths[1])
    paths[2].unlink()
    with pytest.raises(UnreadableFileError, match=r"img001\.png: .*readable when the pool was"):
        pool.item(1)
    with pytest.raises(UnreadableFileError, match=r"img002\.png: file not found"):
        pool.item(2)
    with pytest.raises(UnreadableFileError, match=r"img00[12]\.png") as raised:
        pool.inputs([0, 3])  # fitting the standardisation reads every file
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_one_truncated_png_among_200_no_longer_stops_a_session(tmp_path):
    rng = np.random.default_rng(5)
    paths, targets = [], []
    for index in range(200):
        target = index % 2
        image = rng.integers(0, 80, (10, 10)) + 150 * target
        paths.append(save(tmp_path / f"{index:03d}.png", image.astype(np.uint8)))
        targets.append(target)
    truncate(paths[137])
    names = [str(path) for path in paths]
    with pytest.raises(UnreadableFileError, match=r"(?s)1 of 200 files .*137\.png: truncated"):
        al.Pool(names, targets=targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pool = al.Pool(names, targets=targets, on_error="skip")
    assert len(pool) == 199 and 137 not in pool.ids and pool.skipped[0].path == paths[137]
    session = al.Session(pool, seed=0, strategy="entropy", train_config=FAST_TRAINING)
    start = [item_id for item_id in pool.ids[:20]]
    session.label(start, [targets[item_id] for item_id in start])
    session.retrain()
    batch = session.query(5)
    assert len(batch.ids) == 5 and 137 not in batch.ids


# ---------------------------------------------------------------------------- folders
def test_a_folder_gives_its_image_files_with_relative_paths_as_ids(tmp_path):
    grey_files(tmp_path, 2)
    (tmp_path / "more").mkdir()
    save(tmp_path / "more" / "c.PNG", np.zeros((12, 12), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_text("AppleDouble resource fork")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "x.png").write_text("junk")
    pool = al.Pool(tmp_path, classes=["a"])
    assert pool.ids == ["img000.png", "img001.png", "more/c.PNG"]
    assert pool.item_path("more/c.PNG") == tmp_path / "more" / "c.PNG"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(al.kinds.ItemKindError, match=r"folder .*empty holds no image files"):
        al.Pool(str(empty), classes=["a"])


def test_a_big_pool_of_files_fixes_its_input_scale_from_a_sample(tmp_path, monkeypatch):
    """One mean and one scale for every input value need not decode every file (5 000 RGB
    96×96 PNGs: 5.5 s of the session's start); a few hundred agree with the whole pool."""
    import alwidget.kinds.image as image_kind

    rng = np.random.default_rng(0)
    paths = []
    for index in range(700):  # 80×80×3 = 19 200 values: 8 M values need only ~417 files
        pixels = rng.integers(0, 256, size=(80, 80, 3), dtype=np.uint8)
        pixels[:, :, 0] = np.uint8(index % 256)  # the red channel drifts through the pool
        paths.append(str(save(tmp_path / f"item{index:03d}.png", pixels)))
    pool = al.Pool(paths, classes=["a"])
    reads = []
    read_file = image_kind.load_image_file
    monkeypatch.setattr(
        image_kind, "load_image_file", lambda *a, **k: reads.append(a[0]) or read_file(*a, **k)
    )
    pool.inputs(np.array([0]))
    assert 500 <= len(reads) <= 502  # at least 500 files (and the one asked for), not all 700
    monkeypatch.setattr(image_kind, "load_image_file", read_file)
    standardised = pool.inputs(np.arange(len(pool))).double()  # the whole pool, so scaled
    assert abs(standardised.mean()) < 0.01 and abs(standardised.std() - 1) < 0.01


def test_file_facts_resolve_links_like_path_resolve(tmp_path):
    """The digests' paths are each file's real path: through a linked folder, a linked file
    and a missing file, as ``Path.resolve`` gives them, with sizes and no size when missing."""
    from alwidget.kinds.items import FileItems

    real = tmp_path / "real"
    real.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (4, 4)).save(real / name)
    (tmp_path / "linked-folder").symlink_to(real, target_is_directory=True)
    (tmp_path / "linked-file.png").symlink_to(real / "b.png")
    deep = tmp_path / "deep" / "inner"
    deep.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(deep / "a.png")
    (tmp_path / "deep-link").symlink_to(deep / "real-too", target_is_directory=True)
    (deep / "real-too").mkdir()
    paths = [
        real / "a.png",
        tmp_path / "linked-folder" / "a.png",
        tmp_path / "linked-file.png",
        tmp_path / "deep-link" / ".." / "a.png",  # resolved: deep/inner/a.png, not tmp/a.png
        tmp_path / "missing.png",
    ]
    facts = FileItems(paths, load=lambda path: path)._file_facts()
    assert [path for path, _, _ in facts] == [path.resolve() for path in paths]
    assert facts[3][0] == deep / "a.png"
    sizes = [size for _, size, _ in facts]
    assert sizes[:3] == [(real / "a.png").stat().st_size] * 2 + [(real / "b.png").stat().st_size]
    assert sizes[4] is None


def test_reads_kept_in_a_block_are_not_read_again_and_forgotten_after(tmp_path):
    from alwidget.kinds.items import FileItems

    loads = []

    def load(path):
        loads.append(path.name)
        return np.full(100, len(loads), dtype=np.uint8)  # 100 bytes per item

    items = FileItems([tmp_path / f"{n}.bin" for n in range(6)], load=load)
    with items.keeping_reads(max_bytes=300):
        first = items.batch(np.arange(6))  # the first 300 bytes (3 items) are kept
        again = items.batch(np.arange(6))
        assert all(a is b for a, b in zip(first[:3], again[:3]))
        assert not first[0].flags.writeable  # handed out twice: read-only
        assert loads == [f"{n}.bin" for n in range(6)] + ["3.bin", "4.bin", "5.bin"]
    loads.clear()
    items.get(0)
    assert loads == ["0.bin"]  # forgotten after the block
    assert items._kept is None


def test_a_session_start_reads_each_file_once(tmp_path):
    """Fitting the input scale and the svd encoder reads a sample that encoding the pool
    reads again: inside the session's start each file is decoded once."""
    import alwidget.kinds.image as image_kind

    folder = tmp_path / "pngs"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for n in range(40):
            pixels = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / cls / f"{n:03}.png")
    pool = al.Pool(folder, classes=["a", "b"])
    decoded = []
    original = image_kind.load_image_file

    def counting(path, colour=None):
        decoded.append(str(path))
        return original(path, colour)

    image_kind.load_image_file = counting
    try:
        al.Session(pool, encoder="svd", store=False, cache_dir=tmp_path / "cache")
    finally:
        image_kind.load_image_file = original
    assert len(decoded) == len(set(decoded)) == 80


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32])
@pytest.mark.parametrize("shape", [(5, 6), (5, 6, 3)])
def test_converting_a_batch_at_once_gives_each_images_own_scaling(dtype, shape):
    """The one-stack path for equal images must match scaling image by image, bit for bit,
    and leave the arrays it was given unchanged."""
    from alwidget.kinds.image import file_images_to_model_input

    rng = np.random.default_rng(0)
    images = [(rng.random(shape) * 200).astype(dtype) for _ in range(4)]
    originals = [image.copy() for image in images]
    range_of = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(np.dtype(dtype))
    expected = np.stack(
        [
            np.moveaxis(np.atleast_3d(image.astype(np.float32)), -1, 0)
            / (np.float32(range_of) if range_of else np.float32(1))
            for image in images
        ]
    )
    converted = file_images_to_model_input(images)
    assert converted.dtype == np.float32 and converted.flags["C_CONTIGUOUS"]
    assert np.array_equal(converted, expected)
    assert all(np.array_equal(a, b) for a, b in zip(images, originals))


def test_a_large_batch_is_read_in_order_and_its_first_bad_file_is_named(tmp_path):
    from alwidget.kinds.image import load_image_file
    from alwidget.kinds.items import _READ_IN_PARALLEL_FROM, FileItems

    paths = grey_files(tmp_path, 3 * _READ_IN_PARALLEL_FROM)
    items = FileItems(paths, load=load_image_file)
    batch = items.batch(np.arange(len(paths))[::-1])  # on the reader threads
    for path, image in zip(paths[::-1], batch):
        np.testing.assert_array_equal(image, load_image_file(path))
    truncate(paths[20])
    truncate(paths[30])
    with pytest.raises(UnreadableFileError, match=paths[20].name):
        items.batch(np.arange(len(paths)))


def test_a_forked_child_reads_a_large_batch_without_the_parents_threads(tmp_path):
    import os
    import signal
    import time

    from alwidget.kinds.image import load_image_file
    from alwidget.kinds.items import _READ_IN_PARALLEL_FROM, FileItems

    paths = grey_files(tmp_path, 2 * _READ_IN_PARALLEL_FROM)
    items = FileItems(paths, load=load_image_file)
    expected = items.batch(np.arange(len(paths)))  # the parent's reader threads now exist
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the batch is read and right
        try:
            again = items.batch(np.arange(len(paths)))
            same = all(np.array_equal(a, b) for a, b in zip(again, expected))
            os._exit(0 if same else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung reading a batch of files")
