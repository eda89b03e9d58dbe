"""Attribution graphs for transformers: completeness with attention, normalisers and skips frozen; edges against
hand-computed virtual weights in one layer; total effects against the model's own derivative with its patterns
patched; the baseline; clear errors for what cannot be traced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.circuits.frozen_transformer import neuron_transcoders
from toymi.circuits.transformer_graph import completeness_gap, transformer_graph
from toymi.circuits.transformer_graph_summary import summarise_transformer_graphs
from toymi.decompose.transcoder import Transcoder
from toymi.model.interventions import patch, steer
from transformer_models import TOKENS, model


def skip_transcoders(n_layers: int, seed: int = 5) -> list[Transcoder]:
    """Random transcoders with skips and biases: large error nodes, many active latents."""
    out = []
    for layer in range(n_layers):
        tc = Transcoder(16, 16, 20, jax.random.PRNGKey(seed + layer), skip=True)
        leaves, tree = jax.tree.flatten(tc)
        keys = jax.random.split(jax.random.PRNGKey(seed + 50 + layer), len(leaves))
        out.append(jax.tree.unflatten(tree, [leaf + 0.3 * jax.random.normal(k, leaf.shape)
                                             for leaf, k in zip(leaves, keys)]))
    return out


@pytest.mark.parametrize("n_layers,normalization,replacement", [
    (1, "none", "neurons"), pytest.param(2, "layernorm", "skip transcoders", marks=pytest.mark.slow),
    pytest.param(2, "rmsnorm", "neurons", marks=pytest.mark.slow),
    pytest.param(2, "layernorm", "gelu neurons", marks=pytest.mark.slow)])
def test_edges_sum_to_every_latent_and_logit(n_layers, normalization, replacement):
    """Each latent's incoming edges plus its constant give its value, each logit's give the logit; for GELU neurons
    (every one a node, none exactly zero) through their frozen gates."""
    m = model(n_layers, normalization, act_fn="gelu" if replacement == "gelu neurons" else "relu")
    layers = neuron_transcoders(m) if replacement.endswith("neurons") else skip_transcoders(n_layers)
    g = transformer_graph(m, layers, TOKENS, readout=(-1, 2))
    gap = completeness_gap(g)
    assert float(gap["outputs"]) < 1e-4 and float(gap["latents"]) < 1e-4
    np.testing.assert_allclose(g.outputs, m(TOKENS)[jnp.array([5, 2])], atol=1e-5)  # the model's own logits
    if replacement.endswith("neurons"):  # exact: nothing to miss (GELU's erf may round apart in its two programs)
        assert float(jnp.abs(g.errors).max()) <= (0.0 if replacement == "neurons" else 1e-6)
    else:
        assert float(jnp.abs(g.error_output).max()) > 1e-3  # the error nodes are in the graph
    assert int(g.active.sum()) > 0
    # causality: nothing flows into a latent from a later position, or from its own or a later layer's latents
    for l in range(n_layers):
        assert float(jnp.abs(g.latent_latent[l:, :, :, l]).max()) == 0.0
    future = jnp.tril(jnp.ones((6, 6), bool), -1)  # [source pos, target pos]: source after target
    assert float(jnp.abs(jnp.where(future[:, None, :, None], g.input_latent, 0.0)).max()) == 0.0


def test_one_layer_edges_are_activation_times_virtual_weight():
    """In one layer without normalisers: an input's edge into logit k at the readout is its embedding through the
    residual stream and each head's OV circuit under the clean pattern; a neuron's edge is z_i W_out[i] W_U[:, k]
    at the readout position and zero elsewhere (it cannot reach another position's logits)."""
    m = model(1, "none")
    g = transformer_graph(m, neuron_transcoders(m), TOKENS, readout=(-1,))
    _, acts = m.run(TOKENS, capture=["pattern", "mlp_post"])
    A = np.asarray(acts["pattern", 0])  # [head, q, k]
    W_V, W_O, W_U = (np.asarray(a, np.float64) for a in (m.W_V[0], m.W_O[0], m.W_U))
    W_in, W_out = np.asarray(m.W_in[0], np.float64), np.asarray(m.W_out[0], np.float64)
    emb = np.asarray(m.W_E[TOKENS] + m.W_pos[:6], np.float64)
    OV = np.einsum("hde,hef->hdf", W_V, W_O)

    def through_attention(p, q):  # input p's map into position q's stream (residual and attention)
        return (p == q) * np.eye(16) + np.einsum("h,hdf->df", A[:, q, p], OV)

    r = 5
    want_out = np.stack([emb[p] @ through_attention(p, r) @ W_U for p in range(6)])
    np.testing.assert_allclose(g.input_output[:, 0], want_out, atol=1e-4)
    z = np.asarray(acts["mlp_post", 0], np.float64)  # [pos, d_mlp]
    np.testing.assert_allclose(g.latent_output[0, r, :, 0], z[r][:, None] * (W_out @ W_U), atol=1e-4)
    assert float(jnp.abs(g.latent_output[0, :r]).max()) == 0.0
    active = z > 0
    for q in (2, 5):
        want_in = np.stack([emb[p] @ through_attention(p, q) @ W_in for p in range(6)]) * active[q]
        np.testing.assert_allclose(g.input_latent[:, 0, q], want_in, atol=1e-4)


def frozen_derivative(m, tokens, readout: int) -> np.ndarray:
    """`[pos, d_vocab_out]`: d logit / d s_p, where input p's embedding is scaled by (1 + s_p), in the model itself
    with every attention pattern and normaliser scale patched to its clean value (ReLU neurons are piecewise linear,
    so the derivative is the total effect with their gates frozen)."""
    per_layer = [site for site in ("pattern", "ln1_scale", "ln2_scale") if site in m.sites]
    _, acts = m.run(tokens, capture=[*per_layer, *(["ln_final_scale"] if "ln_final_scale" in m.sites else [])])
    emb = m.W_E[tokens] + m.W_pos[: tokens.shape[0]]
    fixed = [patch(site, acts[site, l], layer=l) for site in per_layer for l in range(m.config.n_layers)]
    if "ln_final_scale" in m.sites:
        fixed.append(patch("ln_final_scale", acts["ln_final_scale"]))

    def logits(s):
        return m.run(tokens, interventions=[*fixed, steer("resid_pre", s[:, None] * emb, layer=0)])[0][readout]

    return np.asarray(jax.jacfwd(logits)(jnp.zeros(tokens.shape[0]))).T


@pytest.mark.slow
def test_total_attribution_is_the_frozen_models_derivative():
    m = model(2, "layernorm")
    s = summarise_transformer_graphs(m, neuron_transcoders(m), TOKENS[None], jnp.ones((1, 9), bool))
    np.testing.assert_allclose(np.asarray(s.signed).T, frozen_derivative(m, TOKENS, 5), atol=1e-4)
    assert float(s.completeness) < 1e-4
    # one layer: total = direct edge + every path input → active neuron → logit, read off the graph's own edges
    m1 = model(1, "none")
    g = transformer_graph(m1, neuron_transcoders(m1), TOKENS)
    through = jnp.einsum("pqi,qik->pk", g.input_latent[:, 0],
                         jnp.where(g.active[0, :, :, None], g.latent_output[0, :, :, 0] / jnp.where(
                             g.active[0, :, :, None], g.latents[0, :, :, None], 1.0), 0.0))
    s1 = summarise_transformer_graphs(m1, neuron_transcoders(m1), TOKENS[None], jnp.ones((1, 9), bool))
    np.testing.assert_allclose(np.asarray(s1.signed).T, g.input_output[:, 0] + through, atol=1e-4)
    np.testing.assert_allclose(s1.direct.T, jnp.abs(g.input_output[:, 0]), atol=1e-5)


@pytest.mark.slow  # ~5-6 s: two compiles (graphs and their summary)
def test_an_attention_only_model_has_input_and_output_nodes_alone():
    """No MLP, nothing to replace: the graph's only edges are the inputs' through the residual stream and the heads'
    OV circuits, they sum to every logit, and each input's total attribution is the frozen model's derivative."""
    m = model(2, "layernorm", d_mlp=0)
    assert neuron_transcoders(m) == ()
    g = transformer_graph(m, (), TOKENS, readout=(-1, 3))
    assert g.latents.shape == (0, 6, 0) and g.error_output.shape == (0, 6, 2, 9)
    assert float(completeness_gap(g)["outputs"]) < 1e-4
    s = summarise_transformer_graphs(m, (), TOKENS[None], jnp.ones((1, 9), bool))
    np.testing.assert_allclose(np.asarray(s.signed).T, frozen_derivative(m, TOKENS, 5), atol=1e-4)
    np.testing.assert_allclose(s.attribution, s.direct, atol=1e-6)  # every path is direct
    assert float(jnp.abs(s.latent_share).max()) == 0.0


@pytest.mark.slow
def test_summary_averages_only_where_each_output_matters():
    m = model(1, "none")
    tokens = jnp.stack([TOKENS, jnp.array([2, 2, 8, 1, 0, 3]), jnp.array([5, 6, 7, 8, 0, 1])])
    where = jnp.zeros((3, 9), bool).at[0, 0].set(True).at[1, 0].set(True).at[2, 4].set(True)
    s = summarise_transformer_graphs(m, neuron_transcoders(m), tokens, where, chunk=2)  # padded to 4 rows
    np.testing.assert_array_equal(s.examples, [2, 0, 0, 0, 1, 0, 0, 0, 0])
    totals = [frozen_derivative(m, t, 5) for t in tokens]
    np.testing.assert_allclose(s.attribution[0], (np.abs(totals[0][:, 0]) + np.abs(totals[1][:, 0])) / 2, atol=1e-4)
    np.testing.assert_allclose(s.attribution[4], np.abs(totals[2][:, 4]), atol=1e-4)
    assert float(jnp.abs(s.attribution[1]).max()) == 0.0


def test_a_baseline_moves_equal_positions_into_the_constant():
    """Input nodes measured from a baseline: a position holding the baseline's token has a zero node and no edges,
    and completeness still holds (the baseline's embeddings sit in the constants)."""
    m = model(1, "none")
    baseline = jnp.array([1, 4, 0, 0, 3, 0])  # equal to TOKENS at positions 0, 1, 4 and 5
    g = transformer_graph(m, neuron_transcoders(m), TOKENS, baseline=baseline)
    assert float(completeness_gap(g)["outputs"]) < 1e-4
    same = np.asarray(TOKENS == baseline)
    assert float(jnp.abs(g.input_output[same]).max()) == 0.0 and float(jnp.abs(g.input_latent[same]).max()) == 0.0
    assert float(jnp.abs(g.input_output[~same]).max()) > 1e-3
    s = summarise_transformer_graphs(m, neuron_transcoders(m), TOKENS[None], jnp.ones((1, 9), bool),
                                     baseline=baseline)
    np.testing.assert_array_equal(np.asarray(s.present[0]) > 0, ~same)
    assert np.isnan(s.given_present(s.attribution)[0, same]).all()


def test_what_cannot_be_traced_is_a_clear_error():
    m = model(1, "none")
    with pytest.raises(ValueError, match="one transcoder per MLP layer"):
        transformer_graph(m, neuron_transcoders(model(2, "none")), TOKENS)
    with pytest.raises(ValueError, match="only for an elementwise activation"):
        neuron_transcoders(model(1, "none", act_fn="solu"))
    with pytest.raises(ValueError, match="maps 8 → 8"):
        transformer_graph(m, Transcoder(8, 8, 4, jax.random.PRNGKey(0)), TOKENS)
    with pytest.raises(IndexError, match="readout position 6"):
        transformer_graph(m, neuron_transcoders(m), TOKENS, readout=(6,))
    with pytest.raises(ValueError, match="one sequence"):
        transformer_graph(m, neuron_transcoders(m), TOKENS, baseline=TOKENS[:3])
    with pytest.raises(ValueError, match="where must be"):
        summarise_transformer_graphs(m, neuron_transcoders(m), TOKENS[None], jnp.ones((2, 9), bool))
    with pytest.raises(ValueError):  # a token out of the vocabulary
        transformer_graph(m, neuron_transcoders(m), TOKENS.at[0].set(9))
    from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
    with pytest.raises(TypeError, match="need a transformer"):
        neuron_transcoders(ResidualMLP(ResidualMLPConfig(n_features=4, d_model=8, d_mlp=4), jax.random.PRNGKey(0)))


def test_readme_example_runs(capsys):
    """The README's transformer attribution-graph block runs as written and prints what its comment says."""
    from readme_python import promised_output, run_python_block

    block, _ = run_python_block("transformer_graph(")
    printed = capsys.readouterr().out.strip()
    assert printed == promised_output(block), printed


def test_an_induction_graph_credits_the_copied_token_and_the_ablations_all_three_positions():
    """The hand-written induction circuit: with attention frozen the right logit comes from the copied token s alone;
    zeroing a token shows that s - 1 and t (why s is attended) matter as much."""
    from toymi.circuits.induction_graphs import induction_attribution
    from toymi.circuits.planted import induction

    planted = induction(batch=16)
    r = induction_attribution(planted.model, planted.clean)
    assert r["graph"]["s"] == pytest.approx(1.0, abs=1e-6) and r["graph"]["top_is_s"] == 1.0
    assert r["graph"]["traced"] == r["ablation"]["traced"] == 16 * 3  # three repeated positions per sequence
    for part in ("s", "s-1", "t"):
        assert r["ablation"][part] > 0.25, (part, r["ablation"])
    with pytest.raises(ValueError, match="nothing to trace"):
        induction_attribution(planted.model, planted.clean[:, :5])  # the first half alone repeats nothing


@pytest.mark.slow
def test_the_induction_report_of_toymi_circuits(tmp_path):
    """`toymi circuits RUN` on an induction run adds its graph and ablation shares (`induction_attribution_report`),
    here on the hand-written circuit with a task whose sequences it reads (<bos> a b c d a b c d)."""
    import json
    from types import SimpleNamespace

    from toymi.circuits.planted import induction
    from toymi.circuits.replacement import own_neurons
    from toymi.reports.attribution import induction_attribution_report
    from toymi.tasks.induction import Induction

    task = Induction(vocab=8, subseq_len=4, n_repeats=2, mode="repeat", bos=True, eval_size=16)
    run = SimpleNamespace(model=induction().model, task=task, directory=tmp_path, model_step=0)
    table = induction_attribution_report(run, tmp_path / "circuits", own_neurons(run.model))
    scores = json.loads((tmp_path / "circuits" / "attribution.json").read_text())
    assert scores["graph"]["s"] == pytest.approx(1.0) and scores["graph"]["traced"] == 16 * 3
    assert sum(scores["ablation"][k] for k in ("s", "s-1", "t", "other")) == pytest.approx(1.0)
    assert "| graph, attention frozen | 48 | 1.000 |" in table
    qk = scores["qk"]  # the planted induction head, a1.h0, found by its attention; its score all on (t, s - 1)
    assert (qk["layer"], qk["head"], qk["traced"]) == (1, 0, 48) and qk["t, s-1"] == pytest.approx(1.0, abs=1e-3)
    assert "induction head L1H0" in table and "| graph nodes |" not in table  # attention-only: nodes are positions
    assert "| input positions | 48 | 1.000 | 1.000 | 1.000 | 0.000 | – | – | – | 1.000 |" in table


@pytest.mark.slow

def test_the_induction_report_splits_the_qk_score_over_graph_nodes_after_an_mlp(tmp_path):
    """With an MLP before the chosen head (a random 2-layer model whose most induction-like head is in layer 1), the
    QK table has a second row, by graph node: the own neurons' latents take a share, their exact error nodes none."""
    import json
    from types import SimpleNamespace

    from toymi.circuits.replacement import own_neurons
    from toymi.reports.attribution import induction_attribution_report
    from toymi.tasks.induction import Induction

    task = Induction(vocab=8, subseq_len=2, n_repeats=2, mode="repeat", bos=True, eval_size=16)
    run = SimpleNamespace(model=model(2, "layernorm", seed=3), task=task, directory=tmp_path, model_step=0)
    table = induction_attribution_report(run, tmp_path / "circuits", own_neurons(run.model))
    scores = json.loads((tmp_path / "circuits" / "attribution.json").read_text())
    assert scores["qk"]["layer"] == 1 and scores["qk_graph"]["traced"] == scores["qk"]["traced"] == 16
    graph = scores["qk_graph"]
    assert graph["latents"] > graph["latents t, s"] > 0 and graph["errors"] < 1e-6
    row = next(line for line in table.splitlines() if line.startswith("| graph nodes | 16 |"))
    assert row.split(" | ")[8] == "0.000"  # the error nodes' column
