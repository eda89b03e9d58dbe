"""The SPD page (`toymi.views.spd_page`) and the decompositions kept with a run (`toymi.decompose.parameters.saved`):
the page shows exactly the decomposition's live subcomponents in probe order; a saved decomposition is reused for its
model step and settings only, and never when its arrays are damaged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi.decompose.parameters.saved as saved
from toymi.cli import main
from toymi.decompose.parameters.components import Subcomponents
from toymi.decompose.parameters.importance import ImportanceMLPs
from toymi.decompose.parameters.losses import SPDParams
from toymi.errors import ConfigError
from toymi.model.tms import TMS, TMSConfig
from toymi.run import load_run
from toymi.sealed import sealed_arrays
from toymi.views.spd_page import QuickSPD, keep_spd, spd_view

PERM = [3, 0, 4, 1, 2]  # subcomponent c < 5 is feature PERM[c]'s column; c5, c6 are empty


def _identity_importance(C: int) -> ImportanceMLPs:
    """Γ_c(s) ≈ s: w2 · gelu(s + 10) − 10, so g_c = clip(V_cᵀ a) (gelu(y) = y to 1e-20 at y ≥ 9)."""
    w1 = jnp.zeros((C, 16)).at[:, 0].set(1.0)
    return ImportanceMLPs(w1=w1, b1=jnp.full((C, 16), 10.0), w2=w1, b2=jnp.full(C, -10.0))


def _exact_decomposition(model: TMS) -> SPDParams:
    """W's columns as 5 of 7 rank-1 subcomponents (in the order PERM), reading the one-hot features exactly."""
    W = np.asarray(model.W)
    V = np.zeros((5, 7), np.float32)
    U = np.zeros((2, 7), np.float32)
    for c, i in enumerate(PERM):
        V[i, c], U[:, c] = 1.0, W[:, i]
    w_in = Subcomponents(U=jnp.asarray(U), V=jnp.asarray(V))
    w_out = Subcomponents(U=w_in.V, V=w_in.U)  # tied: W_out's are W_in's transposed
    return SPDParams((w_in, w_out), (_identity_importance(7), _identity_importance(7)))


def test_the_page_draws_the_live_subcomponents_in_the_order_of_the_features_they_serve():
    model = TMS(TMSConfig(n_features=5, d_hidden=2), jax.random.PRNGKey(0))
    view = spd_view(model, _exact_decomposition(model))
    w_in = view.data["matrices"][0]
    assert view.data["rows"] == [f"x{i}" for i in range(5)]
    # feature 0 is served by c1, 1 by c3, 2 by c4, 3 by c0, 4 by c2; the empty c5, c6 are not drawn
    assert w_in["ids"] == ["c1", "c3", "c4", "c0", "c2"]
    np.testing.assert_allclose(w_in["ci"], np.eye(5), atol=1e-6)
    np.testing.assert_allclose(w_in["norms"], np.linalg.norm(np.asarray(model.W), axis=0), rtol=1e-6)
    np.testing.assert_array_equal(w_in["V"], np.eye(5))  # in that order each reads its own feature
    np.testing.assert_array_equal(w_in["U"], np.asarray(model.W).T)  # and writes its column of W
    assert "5 of 7 subcomponents alive by norm, 5 important" in w_in["summary"] and "= 0 " not in w_in["summary"]
    assert view.figure_ids() == ["importance", "norms", "subcomponent"]
    assert "<td>W_in</td><td>input</td><td>[2, 5]</td><td>7</td><td>5</td><td>5</td><td>0</td>" in view.body()


def test_a_residual_mlps_residual_stream_side_is_drawn_per_feature_through_the_fixed_embedding():
    """`W_in`'s `V_c` reads the residual stream, where each feature is spread over d_model dimensions: the page draws
    `W_E V_c` (per input feature) and `W_out`'s `U_c` as `U_c W_U` (per output); the neuron sides as they are."""
    from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig

    model = ResidualMLP(ResidualMLPConfig(n_features=5, d_model=40, d_mlp=3, embedding="orthogonal"),
                        jax.random.PRNGKey(0))
    W_E = np.asarray(model.W_E)  # orthonormal rows: feature i's direction read back is exactly e_i
    neurons = np.eye(3, 7, dtype=np.float32)  # c0-c2 on neurons 0-2; c3-c6 on none
    V_in = np.zeros((40, 7), np.float32)
    V_in[:, :3] = W_E[PERM[:3]].T  # c reads feature PERM[c]
    w_in = Subcomponents(U=jnp.asarray(neurons), V=jnp.asarray(V_in))
    U_out = np.zeros((40, 7), np.float32)
    U_out[:, :3] = W_E[PERM[:3]].T  # c writes feature PERM[c]
    w_out = Subcomponents(U=jnp.asarray(U_out), V=jnp.asarray(neurons))
    view = spd_view(model, SPDParams((w_in, w_out), (_identity_importance(7), _identity_importance(7))))
    first, second = view.data["matrices"]
    assert (first["V_axis"], first["U_axis"]) == ("W_E V_c: reads, per input feature", "U_c: writes (output index)")
    assert (second["V_axis"], second["U_axis"]) == ("V_c: reads (input index)", "U_c W_U: writes, per output")
    for m in (first, second):
        order = [int(i[1:]) for i in m["ids"]]
        assert sorted(order) == [0, 1, 2]  # the empty c3-c6 are not drawn
        feature_side, neuron_side = (m["V"], m["U"]) if m is first else (m["U"], m["V"])
        np.testing.assert_allclose(feature_side, np.eye(5)[[PERM[c] for c in order]], atol=1e-6)
        np.testing.assert_array_equal(neuron_side, np.eye(3)[order])
    assert "W_E V_c: reads, per input feature" in view.body()  # the first matrix's subplot title


def test_the_page_refuses_a_decomposition_of_another_model_or_with_nothing_alive():
    model = TMS(TMSConfig(n_features=5, d_hidden=2), jax.random.PRNGKey(0))
    params = _exact_decomposition(model)
    with pytest.raises(ValueError, match="has 1 matrices; this model decomposes"):
        spd_view(model, SPDParams(params.components[:1], params.importance[:1]))
    dead = jax.tree.map(jnp.zeros_like, params)  # every norm 0 and g = clip(−10 + gelu(10)) = 0
    with pytest.raises(ValueError, match="nothing to show"):
        spd_view(model, dead)


@pytest.fixture(scope="module")
def tms_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tms") / "run"
    assert main(["train", "tasks/tms_quick.toml", "--out", str(out), "--set", "train.steps=20", "--set",
                 "train.eval_every=20", "--set", "train.checkpoint_every=20", "--no-progress", "--no-plot"]) == 0
    return out


@pytest.mark.slow
def test_a_decomposition_is_trained_once_then_loaded_for_its_step_and_settings(tms_run, monkeypatch):
    run = load_run(tms_run)
    first = saved.spd_for_run(run, steps=30, batch_size=128)
    assert first.loaded_from is None and first.settings["C"] == 20 and first.settings["importance_coef"] == 3e-3
    assert first.settings["output_loss"] == "mse"  # the run's task's comparison (`Task.output_comparison`)
    assert sorted(p.name for p in (tms_run / "spd").iterdir()) == [sealed_arrays(tms_run / "spd", "spd").name,
                                                                   "spd.json"]  # no temporary left

    def train(*args):
        raise AssertionError("trained although a saved decomposition fits")

    real_train = saved.train_saved_spd
    monkeypatch.setattr(saved, "train_saved_spd", train)
    again = saved.spd_for_run(run, steps=30, batch_size=128)
    assert again.loaded_from == str(tms_run / "spd") and again.final_losses == first.final_losses
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(again.params)))
    assert saved.load_spd(tms_run, run.model, run.model_step + 10) is None  # the run trained further: stale
    with pytest.raises(AssertionError, match="trained although"):  # other settings are not these
        saved.spd_for_run(run, steps=40, batch_size=128)
    arrays = sealed_arrays(tms_run / "spd", "spd")
    data = bytearray(arrays.read_bytes())
    data[-1] ^= 1
    arrays.write_bytes(bytes(data))
    assert saved.load_spd(tms_run, run.model, run.model_step) is None  # a damaged file is never read
    monkeypatch.setattr(saved, "train_saved_spd", real_train)
    assert saved.spd_for_run(run, steps=30, batch_size=128).loaded_from is None  # trained again and resealed
    assert saved.load_spd(tms_run, run.model, run.model_step) is not None


@pytest.mark.slow
def test_toymi_view_spd_keeps_a_decomposition_that_later_views_show(tms_run, tmp_path):
    site = tmp_path / "site"
    assert main(["view", str(tms_run), "--out", str(site), "--pages", "run"]) == 0
    assert not (site / "spd.html").exists()  # nothing kept yet: no page
    assert main(["view", str(tms_run), "--pages", "run", "--spd", "--spd-steps", "30", "--out", str(site)]) == 0
    assert "SPD of run (step 20): C = 20, 30 steps of 128" in (site / "spd.html").read_text()
    assert "outputs compared by MSE" in (site / "spd.html").read_text()  # the TMS task's comparison
    (site / "spd.html").unlink()
    assert main(["view", str(tms_run), "--out", str(site)]) == 0  # the default pages show what is kept
    assert 'id="importance"' in (site / "spd.html").read_text()
    assert 'href="spd.html"' in (site / "index.html").read_text()

    class Sweep:
        members = ()

    with pytest.raises(ConfigError, match="--spd needs a single run"):
        keep_spd(Sweep(), QuickSPD(steps=30))


@pytest.mark.slow
def test_the_page_in_a_browser_follows_clicks_and_the_matrix_menu(chromium, tmp_path):
    from views.browser import VIEWPORT, Page, check_screenshot
    from views.test_browser import values

    model = TMS(TMSConfig(n_features=5, d_hidden=2), jax.random.PRNGKey(0))
    page = Page(chromium, spd_view(model, _exact_decomposition(model)).save(tmp_path / "spd.html"))
    assert page.plots() == ["importance", "norms", "subcomponent"]
    selected = "() => document.getElementById('selected').textContent"
    assert page.js(selected) == f"subcomponent c1: norm {np.linalg.norm(np.asarray(model.W)[:, 0]):.4g}, most " \
                                "important on x0 (g = 1)"
    # A click on the heat map's fourth column (c0, feature 3's) selects it: its vectors are drawn.
    box = page.page.locator("#importance .nsewdrag").first.bounding_box()
    page.page.mouse.click(box["x"] + box["width"] * 3.5 / 5, box["y"] + box["height"] / 2)
    assert page.js(selected).startswith("subcomponent c0: ") and page.js(selected).endswith("on x3 (g = 1)")
    np.testing.assert_array_equal(values(page, "subcomponent", 0, "y"), np.eye(5)[3])  # V_c0 reads x3
    np.testing.assert_allclose(values(page, "subcomponent", 1, "y"), np.asarray(model.W)[:, 3], rtol=1e-3)
    page.page.select_option("#matrix", "1")  # W_out: the same subcomponents, read from the bottleneck
    assert page.js("() => document.getElementById('summary').textContent").startswith("W_out [5, 2]: ")
    np.testing.assert_allclose(values(page, "importance", 0, "z"),
                               np.asarray(page.js("() => toymiData.matrices[1].ci"), float).reshape(-1))
    check_screenshot(page.screenshot(tmp_path / "spd.png"), VIEWPORT["width"], VIEWPORT["height"])
    assert page.errors == []


def test_attention_subcomponents_are_named_with_the_head_their_head_side_vector_lies_in():
    from transformer_models import model as transformer

    from toymi.decompose.parameters.spd import SPDConfig, init_params
    from toymi.decompose.parameters.targets import model_targets
    from toymi.views.spd_page import matrix_summaries

    model = transformer()  # 2 heads of 8: W_Q's output index h * 8 + i
    targets = model_targets(model, ["W_Q.0", "W_in.0"])  # an attention matrix and another
    params = init_params(model, targets, SPDConfig(C=3), jax.random.PRNGKey(0))
    U = params.components[0].U  # W_Q.0's: [16, 3]
    U = U.at[:8, 0].set(0.0).at[8:, 1].set(0.0)  # c0 writes into head 1 only, c1 into head 0 only
    params = SPDParams((Subcomponents(U=U, V=params.components[0].V), *params.components[1:]), params.importance)
    tokens = jax.random.randint(jax.random.PRNGKey(1), (4, 6), 0, 9)
    by_name = {m["name"]: m for m in matrix_summaries(model, params, tokens, targets)}
    ids = dict(zip(by_name["W_Q.0"]["ids"], by_name["W_Q.0"]["head_share"]))
    assert ids["c0 H1"] == 1.0 and ids["c1 H0"] == 1.0
    assert all(" H" not in i for i in by_name["W_in.0"]["ids"]) and set(by_name["W_in.0"]["head_share"]) == {None}
    assert by_name["W_Q.0"]["ci"].shape == (6, 3)  # a row per position: the mean over the 4 inputs


def test_an_and_gate_model_is_probed_on_each_gates_pair_then_each_input():
    from types import SimpleNamespace

    from toymi.decompose.parameters.evaluate import causal_importances
    from toymi.decompose.parameters.spd import SPDConfig, init_params
    from toymi.decompose.parameters.targets import model_targets
    from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig

    model = ResidualMLP(ResidualMLPConfig(n_features=3, d_model=12, d_mlp=4), jax.random.PRNGKey(0))
    targets = model_targets(model)
    params = init_params(model, targets, SPDConfig(C=4), jax.random.PRNGKey(1))
    task = SimpleNamespace(pairs=((0, 1), (1, 2)), known_circuit="and_gates")
    view = spd_view(model, params, task)
    assert view.data["rows"] == ["x0 & x1", "x1 & x2", "x0", "x1", "x2"]
    w_in = view.data["matrices"][0]
    drawn = [int(i[1:]) for i in w_in["ids"]]
    g = np.asarray(causal_importances(params, model, targets, jnp.asarray([[1.0, 1, 0], [0, 1, 1]]))[0])
    np.testing.assert_allclose(np.asarray(w_in["ci"])[:2], g[:, drawn], rtol=1e-5)  # the pair rows: both inputs on
    assert spd_view(model, params, SimpleNamespace(known_circuit=None)).data["rows"] == ["x0", "x1", "x2"]


def test_a_decomposition_reads_the_task_inputs_as_the_model_does():
    from toymi.decompose.parameters.saved import task_input_sampler
    from toymi.experiment.spec import Spec

    task = Spec.load("tasks/and_gates_transformer_quick.toml").build_task()
    features = task.sample(jax.random.PRNGKey(0), 4).inputs  # [4, n_features] of 0/1
    tokens = task_input_sampler(task, "transformer")(jax.random.PRNGKey(0), 4)  # position j: token 2j + x_j
    assert tokens.dtype.kind == "i" and tokens.shape == (4, task.n_features + 1)
    np.testing.assert_array_equal(tokens[:, :-1], 2 * np.arange(task.n_features) + np.asarray(features))
    np.testing.assert_array_equal(task_input_sampler(task, "residual_mlp")(jax.random.PRNGKey(0), 4), features)
