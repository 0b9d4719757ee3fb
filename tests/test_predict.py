"""The chunked MC predictor: trunk caching, consistent masks, chunking, ensembles."""

import numpy as np
import pytest
import torch
from torch import nn

from alwidget.models import MLP, GalCNN
from alwidget.predict import predict, split_at_first_dropout

torch.manual_seed(0)
IMAGES = torch.randn(37, 1, 12, 12)
ROWS = torch.randn(41, 6)


def from_tensor(tensor):
    return lambda positions: tensor[torch.as_tensor(positions)]


class SameLayersNotSequential(nn.Module):
    """The MLP's layers behind a hand-written forward: the predictor cannot split it."""

    def __init__(self, mlp: MLP):
        super().__init__()
        self.layers = nn.ModuleList(list(mlp))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_split_finds_the_deterministic_trunk():
    model = GalCNN(1, 12, 10, kernel_size=3, padding=1)
    trunk, head = split_at_first_dropout(model)
    assert not any(isinstance(m, nn.Dropout) for m in trunk.modules())
    assert isinstance(list(head)[0], nn.Dropout)
    assert split_at_first_dropout(nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 2))) is None
    assert split_at_first_dropout(SameLayersNotSequential(MLP(6, 3))) is None


def test_trunk_caching_gives_exactly_the_full_mc_samples():
    model = GalCNN(1, 12, 10, kernel_size=3, padding=1)
    cached = predict(model, from_tensor(IMAGES), np.arange(37), mc_samples=8, seed=3, chunk_size=10)
    full = predict(
        model,
        from_tensor(IMAGES),
        np.arange(37),
        mc_samples=8,
        seed=3,
        chunk_size=10,
        cache_trunk=False,
    )
    assert cached.log_probs_N_K_C.shape == (37, 8, 10)
    np.testing.assert_allclose(cached.log_probs_N_K_C, full.log_probs_N_K_C, atol=1e-5)
    # and the samples really differ from one another
    assert np.abs(np.diff(cached.log_probs_N_K_C, axis=1)).max() > 1e-3


def test_fallback_for_a_model_that_cannot_be_split_matches_the_split_path():
    mlp = MLP(6, 3)
    opaque = SameLayersNotSequential(mlp)
    split = predict(mlp, from_tensor(ROWS), np.arange(41), mc_samples=6, seed=1)
    fallback = predict(opaque, from_tensor(ROWS), np.arange(41), mc_samples=6, seed=1)
    np.testing.assert_allclose(split.log_probs_N_K_C, fallback.log_probs_N_K_C, atol=1e-6)


def test_consistent_masks_have_the_same_marginal_distribution_as_torch_dropout():
    torch.manual_seed(1)
    model = MLP(6, 3, hidden=(16,), dropout=0.5)
    x = ROWS[:3]
    ours = np.exp(
        predict(model, from_tensor(x), np.arange(3), mc_samples=3000, seed=0).log_probs_N_K_C
    ).mean(axis=1)
    model.train()
    with torch.no_grad():
        reference = (
            torch.stack([torch.softmax(model(x), dim=1) for _ in range(3000)]).mean(0).numpy()
        )
    np.testing.assert_allclose(ours, reference, atol=0.02)


def test_chunked_prediction_equals_one_chunk():
    model = GalCNN(1, 12, 10, kernel_size=3, padding=1)
    small = predict(
        model,
        from_tensor(IMAGES),
        np.arange(37),
        mc_samples=5,
        chunk_size=4,
        seed=9,
        return_embeddings=True,
    )
    whole = predict(
        model,
        from_tensor(IMAGES),
        np.arange(37),
        mc_samples=5,
        chunk_size=1000,
        seed=9,
        return_embeddings=True,
    )
    np.testing.assert_allclose(small.log_probs_N_K_C, whole.log_probs_N_K_C, atol=1e-5)
    np.testing.assert_allclose(small.embeddings_N_D, whole.embeddings_N_D, atol=1e-5)


def test_embeddings_are_the_input_of_the_last_linear_layer_with_dropout_off():
    model = MLP(6, 3, hidden=(8, 5))
    out = predict(model, from_tensor(ROWS), np.arange(41), mc_samples=4, return_embeddings=True)
    model.eval()
    with torch.no_grad():
        expected = model[:-1](ROWS).numpy()
    assert out.embeddings_N_D.shape == (41, 5)
    np.testing.assert_allclose(out.embeddings_N_D, expected, atol=1e-6)


def test_ensemble_members_fill_the_sample_axis():
    members = [MLP(6, 3, dropout=0.0) for _ in range(4)]
    out = predict(members, from_tensor(ROWS), np.arange(41))
    assert out.log_probs_N_K_C.shape == (41, 4, 3)
    for k, member in enumerate(members):
        with torch.no_grad():
            expected = torch.log_softmax(member.eval()(ROWS), dim=1).numpy()
        np.testing.assert_allclose(out.log_probs_N_K_C[:, k], expected, atol=1e-6)


def test_mc_sampling_without_dropout_is_refused():
    with pytest.raises(ValueError, match="no(ne| dropout)"):
        predict(MLP(6, 3, dropout=0.0), from_tensor(ROWS), np.arange(5), mc_samples=10)


def test_bad_model_output_is_named():
    with pytest.raises(ValueError, match="logits of shape"):
        predict(nn.Flatten(0), from_tensor(ROWS), np.arange(5))


def test_a_fine_tuned_encoder_inside_the_model_is_opened_for_the_split():
    """``Sequential(encoder, Flatten, *head)`` as a fine-tuning session builds it: the
    encoder's layers before its dropout form the trunk, and the samples equal the full
    passes."""
    encoder = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Sequential(nn.MaxPool2d(2), nn.Dropout(0.3))
    )
    model = nn.Sequential(
        encoder, nn.Flatten(), nn.Linear(100, 8), nn.Dropout(0.5), nn.Linear(8, 3)
    )
    names_before = list(model.state_dict())
    trunk, head = split_at_first_dropout(model)
    assert [type(m) for m in trunk] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d]
    assert isinstance(list(head)[0], nn.Dropout) and list(head)[1] is model[1]
    assert list(model.state_dict()) == names_before
    cached = predict(model, from_tensor(IMAGES), np.arange(37), mc_samples=6, seed=2)
    full = predict(
        model, from_tensor(IMAGES), np.arange(37), mc_samples=6, seed=2, cache_trunk=False
    )
    np.testing.assert_allclose(cached.log_probs_N_K_C, full.log_probs_N_K_C, atol=1e-5)
    assert np.abs(np.diff(cached.log_probs_N_K_C, axis=1)).max() > 1e-3


def test_a_sequential_subclass_with_its_own_forward_is_not_opened():
    class Doubled(nn.Sequential):
        def forward(self, x):
            return 2 * super().forward(x)

    model = nn.Sequential(Doubled(nn.Linear(6, 6), nn.Dropout(0.5)), nn.Linear(6, 2))
    assert split_at_first_dropout(model) is None
