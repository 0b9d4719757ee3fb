"""Self-supervised pretraining of the Gal CNN's body (``architecture="gal_cnn"``)."""

import numpy as np
import pytest
import torch
from torch import nn

import alwidget as al
from alwidget.encoders.self_supervised import (
    Recipe,
    SelfSupervisedError,
    gal_cnn_body,
    self_supervised,
)
from alwidget.models import GalCNN, has_dropout

FAST = Recipe(batch_size=64, projection_dim=16, warmup_steps=2)


@pytest.fixture(scope="module")
def small_digits():
    digits = al.datasets.load_digits()
    images = np.stack([digits.item(i) for i in digits.ids[:256]]).astype(np.float32)
    return al.Pool(images, classes=list("ab"))


def _train(pool, cache, **settings):
    options = dict(time_budget=None, max_epochs=1, feature_dim=12, cache_dir=cache)
    options.update(settings)
    return self_supervised(pool, progress=False, recipe=FAST, **options)


def test_the_body_is_the_gal_cnn_without_its_output_layer(small_digits, tmp_path):
    encoder = _train(small_digits, tmp_path, architecture="gal_cnn")
    gal = GalCNN(1, (8, 8), 10)
    kinds = [type(layer) for layer in encoder]
    assert kinds == [type(layer) for layer in list(gal)[:-1]]
    convolutions = [layer for layer in encoder if isinstance(layer, nn.Conv2d)]
    assert [c.kernel_size for c in convolutions] == [(4, 4), (4, 4)]
    assert [c.out_channels for c in convolutions] == [32, 32]
    dense = [layer for layer in encoder if isinstance(layer, nn.Linear)]
    # 8×8 → two 4×4 valid convolutions → 2×2 → max-pool → 1×1, times 32 channels.
    assert len(dense) == 1 and (dense[0].in_features, dense[0].out_features) == (32, 12)
    assert [layer.p for layer in encoder if isinstance(layer, nn.Dropout)] == [0.25, 0.5]
    assert not encoder.training
    report = encoder.report
    assert report.steps == 256 // 64 and np.isfinite(report.loss) and not report.loaded
    features = encoder(small_digits.inputs(np.arange(20))).detach()
    assert features.shape == (20, 12) and (features >= 0).all()  # ends in a ReLU


def test_training_moves_the_weights_and_a_second_call_loads_them(small_digits, tmp_path):
    encoder = _train(small_digits, tmp_path, architecture="gal_cnn", seed=5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)  # the initial weights self_supervised draws for this seed
        untrained = gal_cnn_body((1, 8, 8), 12)
    first = encoder[0].weight.detach()
    assert not torch.allclose(first, untrained[0].weight.detach())
    again = _train(small_digits, tmp_path, architecture="gal_cnn", seed=5)
    assert again.report.loaded and has_dropout(again)
    assert torch.equal(again[0].weight, first)
    inputs = small_digits.inputs(np.arange(10))
    with torch.inference_mode():
        assert torch.equal(again(inputs), encoder(inputs))


def test_the_architecture_is_part_of_the_cache_key(small_digits, tmp_path):
    default = _train(small_digits, tmp_path)
    gal = _train(small_digits, tmp_path, architecture="gal_cnn")
    assert not default.report.loaded and not gal.report.loaded
    assert default.report.path != gal.report.path
    assert len(list(tmp_path.glob("self-supervised-*.pt"))) == 2
    assert not any(isinstance(layer, nn.MaxPool2d) for layer in default)
    assert _train(small_digits, tmp_path).report.loaded


def test_rows_or_an_unknown_architecture_are_refused_naming_the_argument(tmp_path):
    rows = al.Pool(
        np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32), classes=list("ab")
    )
    with pytest.raises(SelfSupervisedError, match="architecture='gal_cnn' .* images.* rows"):
        _train(rows, tmp_path, architecture="gal_cnn")
    images = al.Pool(np.zeros((8, 8, 8), np.float32), classes=list("ab"))
    with pytest.raises(SelfSupervisedError, match="architecture='resnet' is not one of"):
        _train(images, tmp_path, architecture="resnet")
    tiny = al.Pool(np.zeros((8, 5, 5), np.float32), classes=list("ab"))
    with pytest.raises(SelfSupervisedError, match="architecture='gal_cnn': images of 5×5"):
        _train(tiny, tmp_path, architecture="gal_cnn")
    assert not list(tmp_path.glob("self-supervised-*.pt"))


def test_bench_pretrains_the_gal_body_and_fine_tunes_the_whole_gal_cnn(mnist_root, capsys):
    from alwidget.cli import build_parser
    from alwidget.experiments.bench import BenchSettings, bench_encoder, bench_session
    from alwidget.experiments.bench_cli import encoder_training, settings_from_args
    from alwidget.experiments.oracle import run_oracle

    parser = build_parser()
    flags = "--limit 256 --test-limit 100 --train-steps 6 --warm-steps 3 --train-batch 16"
    flags += " --mc-samples 3 --score-subset 40 --budget 30 --encoder self-supervised"
    flags += " --encoder-epochs 0.5 --encoder-architecture gal_cnn --fine-tune"
    args = parser.parse_args(["bench", "--data-root", str(mnist_root), *flags.split()])
    settings = settings_from_args(args, parser)[0]
    assert settings.encoder_architecture == "gal_cnn"
    assert encoder_training(settings) == "gal_cnn body, 0.5 epochs"
    pretrained = bench_encoder(settings)
    assert any(isinstance(layer, nn.MaxPool2d) for layer in pretrained)
    session = bench_session(settings, "bald", seed=0)
    rounds = run_oracle(
        session, initial=settings.initial, seed=0, batch_size=settings.batch_size,
        budget=settings.budget,
        train_config_for_round=lambda index: settings.train_config(first=index == 0),
    )  # fmt: skip
    assert [step.n_labels for step in rounds] == [20, 30]
    network = session.model.members[0]
    body = network[0]
    # The whole Gal CNN trained: its convolutions moved away from the pretrained weights,
    # and its dropout layers are there for the MC samples.
    assert not torch.equal(body[0].weight, pretrained[0].weight)
    assert has_dropout(body)

    args = parser.parse_args(
        ["bench", "--data-root", str(mnist_root), "--encoder", "svd",
         "--encoder-architecture", "gal_cnn"]
    )  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        settings_from_args(args, parser)
    assert exit_info.value.code == 2
    assert "(--encoder-architecture) chooses the network of the self-supervised" in (
        capsys.readouterr().err
    )
    assert BenchSettings().encoder_architecture is None
