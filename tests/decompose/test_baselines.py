import json

import numpy as np
import pytest

from toymi.cli import main
from toymi.decompose import baselines as B
from toymi.decompose import metrics as M


def _sparse_mixture(rng, parts, n=3000, p=0.2, nonneg=True):
    codes = rng.uniform(0.2, 1.0, (n, len(parts))) * (rng.uniform(size=(n, len(parts))) < p)
    if not nonneg:
        codes *= rng.choice([-1.0, 1.0], codes.shape)
    return codes @ parts


def test_pca_spans_the_data_and_explains_all_of_it():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(6, 2)))[0].T  # a 2-D subspace of R^6
    x = rng.normal(size=(500, 2)) @ basis + 3.0
    d = B.pca(x, 2)
    assert M.variance_explained(x, d.decode(d.encode(x))) == pytest.approx(1.0)
    np.testing.assert_allclose(np.linalg.svd(d.directions @ basis.T)[1], 1.0, atol=1e-6)  # same subspace


def test_fast_ica_unmixes_independent_sources():
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(3, 3))
    x = rng.laplace(size=(4000, 3)) @ mixing
    assert M.mmcs(mixing, B.fast_ica(x, 3).directions) > 0.98


def test_fast_ica_on_rank_deficient_data_keeps_to_the_rank():
    # two sources in four coordinates, one of them constant (a dead neuron): asking for 4 components must not NaN
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.laplace(size=(2000, 2)) @ rng.normal(size=(2, 3)), np.ones((2000, 1))], axis=1)
    d = B.fast_ica(x, 4)
    assert d.directions.shape == (2, 4) and np.isfinite(d.directions).all()
    assert M.variance_explained(x, d.decode(d.encode(x))) == pytest.approx(1.0, abs=1e-6)


def test_spherical_kmeans_finds_one_hot_directions_and_codes_one_latent():
    rng = np.random.default_rng(2)
    parts = np.linalg.qr(rng.normal(size=(8, 4)))[0].T
    x = parts[rng.integers(0, 4, 800)] * rng.uniform(0.5, 2.0, (800, 1))
    d = B.spherical_kmeans(x, 4)
    assert M.mmcs(parts, d.directions) > 0.999
    codes = d.encode(x)
    assert M.l0(codes) == 1.0
    assert M.variance_explained(x, d.decode(codes)) == pytest.approx(1.0)


def test_nmf_recovers_non_negative_parts_and_random_directions_do_not():
    rng = np.random.default_rng(3)
    parts = rng.uniform(size=(4, 10)) ** 4  # non-negative, nearly disjoint supports
    x = _sparse_mixture(rng, parts)
    assert M.mmcs(parts, B.nmf(x, 4).directions) > 0.95
    random = B.random_directions(x, 4)
    assert M.mmcs(parts, random.directions) < 0.9
    assert M.variance_explained(x, random.decode(random.encode(x))) < 1.0  # 4 random rows cannot span the data


def test_neuron_basis_scores_one_when_features_are_the_neurons():
    rng = np.random.default_rng(4)
    x = _sparse_mixture(rng, np.eye(5), nonneg=False)
    d = B.neuron_basis(x, np.eye(5))
    assert M.mmcs(np.eye(5), d.directions) == 1.0
    assert M.variance_explained(x, d.decode(d.encode(x))) == pytest.approx(1.0)


def test_bad_baseline_input_is_a_clear_error():
    with pytest.raises(ValueError, match="n_components"):
        B.pca(np.ones((10, 3)), 4)
    with pytest.raises(ValueError, match=r"\[n >= 2, d\]"):
        B.spherical_kmeans(np.ones(3), 2)


@pytest.mark.slow
def test_the_decompose_command_writes_the_table(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["decompose", "--quick", "--truths", "synthetic", "--methods", "L1 SAE,PCA,transcoder", "--seeds", "2",
                 "--out", str(out)]) == 0
    table = (out / "table.md").read_text()
    assert "| L1 SAE | synthetic 24→12 |" in table and "| PCA | synthetic 24→12 |" in table
    assert "transcoder" not in table  # no MLP here: the method does not apply, so it has no row
    results = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in results["rows"]}
    assert len(rows["L1 SAE"]["per_seed"]) == 2
    # the SAE beats PCA (12 components for 24 features) at recovering the features
    assert rows["L1 SAE"]["summary"]["mmcs"][0] > rows["PCA"]["summary"]["mmcs"][0] + 0.1
    assert main(["decompose", "--quick", "--methods", "Gated SAE", "--out", str(out)]) == 2
    assert "unknown methods" in capsys.readouterr().err


@pytest.mark.slow
def test_the_decompose_command_scores_a_trained_model(tmp_path):
    """A model-based truth trains its model inside the command, and methods are scored against it, with the truth's
    own scorer (each truth's construction and scoring: tests/decompose/test_truths.py; the AND-gate model is
    the quickest to train). At the MLP's output transcoders run too, spliced in place of the whole MLP; at the
    neurons, SPD decomposes the model's weights (it has no row at the output, the same model's other site)."""
    out = tmp_path / "bench"
    assert main(["decompose", "--quick", "--truths", "and_gates_out,and_gates", "--methods",
                 "skip transcoder,neuron basis,SPD", "--seeds", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {(r["truth"].split(" (")[0], r["method"]): r for r in results["rows"]}
    assert set(rows) == {("and gates mlp_out", "skip transcoder"), ("and gates mlp_out", "neuron basis"),
                         ("and gates", "neuron basis"), ("and gates", "SPD")}
    for (truth, method), row in rows.items():
        if method != "SPD":
            assert 0 < row["summary"]["mmcs"][0] < 1, method
            assert "monosemantic_fraction" in row["summary"]  # the truth's own scorer ran
    # the truth's own scores get a table of their own under the main one
    own = (out / "table.md").read_text().split("the truth's own scores")[1]
    assert "monosemantic_fraction" in own.splitlines()[2] and "| skip transcoder |" in own
    # the transcoder, trained 100 steps, predicts the MLP's output and stands in for it
    transcoder = rows[("and gates mlp_out", "skip transcoder")]["summary"]
    assert transcoder["variance_explained"][0] > 0.5 and transcoder["loss_recovered"][0] > 0.5
    # SPD's scores are its own (gates with W_in subcomponents of their own, score_and_gates), beside the neurons'
    spd = rows[("and gates", "SPD")]["summary"]
    assert 0 <= spd["gates_found"][0] <= 1 and 0 < spd["w_in_alive"][0] <= 100 and "mmcs" not in spd
    assert [s["spd"] and s["spd"]["C"] for s in results["settings"]] == [None, 100]  # SPD settings of each truth
    # the gates' sigmoids compared as the task compares them, with that distance's coefficient (BINARY_KL_SPD)
    assert (results["settings"][1]["spd"]["output_loss"], results["settings"][1]["spd"]["importance_coef"]) == (
        "binary_kl", 1e-3)
