"""ViT: patches against a NumPy reference, shapes, pooling, attention maps through ember.explain,
errors, and a few steps of learning."""
import numpy as np
import pytest

import ember as em
import ember.explain as ex
from ember.models import ViT, ViTConfig


def np_patches(x, p):
    """(B, C, H, W) -> (B, (H/p)*(W/p), C*p*p), patches in row-major order, each flattened (C, p, p)."""
    B, C, H, W = x.shape
    out = np.zeros((B, (H // p) * (W // p), C * p * p))
    for i in range(H // p):
        for j in range(W // p):
            out[:, i * (W // p) + j] = x[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(B, -1)
    return out


@pytest.mark.parametrize("size,patch,channels", [(8, 2, 1), (8, 4, 1), (6, 3, 3), (5, 1, 2)])
def test_patchify_matches_numpy(size, patch, channels):
    vit = ViT(image_size=size, patch_size=patch, channels=channels, dim=8, depth=1, heads=2, mlp_dim=8)
    x = np.random.default_rng(0).standard_normal((3, channels, size, size)).astype(np.float32)
    assert np.array_equal(vit.patchify(em.tensor(x)).numpy(), np_patches(x, patch).astype(np.float32))
    if channels == 1:
        assert np.array_equal(vit.patchify(em.tensor(x[:, 0])).numpy(), np_patches(x, patch).astype(np.float32))


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_output_shape_and_attention_maps(pool):
    vit = ViT(dim=16, depth=2, heads=4, mlp_dim=32, classes=7, pool=pool)
    x = np.random.default_rng(1).random((5, 8, 8)).astype(np.float32)
    assert vit(em.tensor(x)).shape == (5, 7)
    maps = ex.attention_maps(vit, x)
    assert [m.shape for m in maps] == [(5, 4, 17, 17)] * 2
    assert np.allclose(np.stack(maps).sum(-1), 1, atol=1e-5)
    assert ex.attention_rollout(maps).shape == (5, 17, 17)


def test_bad_configs_and_inputs():
    with pytest.raises(ValueError, match=r"\[ViT\] image_size 8 is not a multiple of patch_size 3"):
        ViT(patch_size=3)
    with pytest.raises(ValueError, match=r"\[ViT\] pool must be 'cls' or 'mean'"):
        ViT(pool="max")
    with pytest.raises(ValueError, match=r"\[ViT\] pass either a ViTConfig or keyword settings"):
        ViT(ViTConfig(), dim=8)
    with pytest.raises(ValueError, match=r"\[ViT\] expects images \(B, 8, 8\), got shape \(2, 7, 8\)"):
        ViT(dim=8, depth=1, heads=2)(em.zeros(2, 7, 8))


def test_a_few_steps_fit_a_small_batch():
    em.manual_seed(0)
    x, y = em.datasets.load_digits()
    x, y = x[:32] / np.float32(16), y[:32]
    vit = ViT(dim=32, depth=2, heads=4, mlp_dim=64, dropout=0.0)
    vit.compile(optimizer=em.optim.AdamW(lr=1e-2), loss="cross_entropy", metrics=["accuracy"])
    history = vit.fit(x, y, epochs=40, batch_size=32, verbose=0, seed=0)  # 40 steps on one batch
    loss = history.history["loss"]
    assert loss[-1] < 0.1 * loss[0] and history.history["accuracy"][-1] > 0.9, loss
