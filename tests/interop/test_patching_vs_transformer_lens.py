"""toymi's patching grids against TransformerLens's `get_act_patch_*` on the same weights, denoising direction
(TransformerLens's: run corrupted, patch in clean). TransformerLens's head grids are [layer, pos, head]."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.dissect.metrics import LogitDiff
from toymi.dissect.patching import patching_grid
from toymi.interop.parity import parity_config, random_weights
from toymi.interop.transformer_lens import to_transformer_lens


@pytest.fixture(scope="module")
def setup():
    # imported here, not at collection: importing TransformerLens takes ~6 s, which every pytest-xdist worker paid
    # while collecting, though only the worker running these tests needs it
    torch = pytest.importorskip("torch")
    tl_patching = pytest.importorskip("transformer_lens.patching")
    model = random_weights(parity_config("LN/gelu_new"), jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 13, (2, 6))
    corrupted = clean.copy()
    corrupted[:, 2] = (clean[:, 2] + 5) % 13
    correct, wrong = np.array([1, 2]), np.array([3, 4])
    hooked = to_transformer_lens(model)
    _, clean_cache = hooked.run_with_cache(torch.tensor(clean))

    def tl_metric(logits):
        last = logits[:, -1]
        rows = torch.arange(2)
        return (last[rows, torch.tensor(correct)] - last[rows, torch.tensor(wrong)]).mean()

    return model, hooked, clean, corrupted, clean_cache, LogitDiff(correct, wrong), tl_metric, torch, tl_patching


@pytest.mark.slow
@pytest.mark.parametrize("site,over,tl_fn,swap", [
    ("resid_pre", ("layer", "pos"), "get_act_patch_resid_pre", False),
    ("z", ("layer", "head", "pos"), "get_act_patch_attn_head_out_by_pos", True),
    ("mlp_out", ("layer", "pos"), "get_act_patch_mlp_out", False),
])
def test_denoising_grid_matches_transformer_lens(setup, site, over, tl_fn, swap):
    model, hooked, clean, corrupted, clean_cache, metric, tl_metric, torch, tl_patching = setup
    ours = np.asarray(patching_grid(model, jnp.asarray(clean), jnp.asarray(corrupted), metric, site, over,
                                    direction="denoising"))
    theirs = getattr(tl_patching, tl_fn)(hooked, torch.tensor(corrupted), clean_cache, tl_metric).numpy()
    theirs = np.swapaxes(theirs, 1, 2) if swap else theirs  # [layer, pos, head] -> toymi's [layer, head, pos]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    noising = np.asarray(patching_grid(model, jnp.asarray(clean), jnp.asarray(corrupted), metric, site, over,
                                       direction="noising"))
    assert np.abs(noising - theirs).max() > 1e-3  # the other direction really is different
