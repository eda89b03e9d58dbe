"""The views' Python side, without a browser: what each page embeds is what toymi's functions compute."""

import html
import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from toymi.dissect.attention import head_scores
from toymi.model.registry import build_model
from toymi.model.tms import TMSConfig
from toymi.views import View, attention_view, latents_view, token_labels
from toymi.views.curves import curves_figure, metric_groups
from toymi.views.page import to_json
from tiny_runs import tiny_run as tiny_run_of


def _data(view: View) -> dict:
    text = view.body()
    return json.loads(re.search(r"const toymiData = (.*?);\n", text, re.S).group(1).replace("<\\/", "</"))


class Rendering:
    def render_tokens(self, tokens):
        return [f"<{int(t)}>" for t in tokens]


class WrongLength:
    def render_tokens(self, tokens):
        return ["x"]


def test_token_labels_use_the_task_rendering_when_it_exists():
    assert token_labels(None, np.array([3, 10])) == ["3", "10"]
    assert token_labels(Rendering(), np.array([3, 10])) == ["<3>", "<10>"]
    with pytest.raises(ValueError, match="1 labels for 2 tokens"):
        token_labels(WrongLength(), np.array([3, 10]))
    with pytest.raises(ValueError, match="one sequence"):
        token_labels(None, np.zeros((2, 2), int))


def test_page_data_cannot_close_its_script_and_keeps_four_digits():
    text = to_json({"label": "</script><script>alert(1)", "x": np.array([1.234567, np.nan, np.inf])})
    assert "</script>" not in text
    assert json.loads(text.replace("<\\/", "</")) == {"label": "</script><script>alert(1)", "x": [1.235, None, None]}


def test_pages_load_nothing_from_the_network():
    view = View("v", "a <title>", ["<p>hi</p>"])
    page = view.html(plotlyjs="plotly.min.js")
    assert '<script src="plotly.min.js">' in page and "a &lt;title&gt;" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    inline = view.html()
    assert len(inline) > 1_000_000 and not re.search(r"<script[^>]+src=", inline)  # the bundle itself, inlined
    shown = view._repr_html_()
    assert shown.startswith("<iframe srcdoc=") and html.unescape(shown.split('"')[1]) == inline


def test_curves_group_losses_and_accuracies_and_show_every_member():
    metrics = {"step": np.arange(3), "train_loss": np.ones(3), "test_loss": np.ones(3), "test_accuracy": np.ones(3),
               "weight_norm": np.ones((3, 2)), "elapsed_s": np.ones(3)}
    assert metric_groups(metrics) == {"loss": ["train_loss", "test_loss"], "accuracy": ["test_accuracy"],
                                      "weight_norm": ["weight_norm"]}
    fig = curves_figure(metrics)
    assert [t.name for t in fig.data] == ["train_loss", "test_loss", "test_accuracy", "weight_norm [0]",
                                          "weight_norm [1]"]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "linear"


@pytest.mark.slow  # 6 CPU seconds: the reference forward and head scores run eagerly
def test_attention_view_embeds_the_patterns_and_the_head_scores(tiny_model, tokens):
    labels = [[f"t{int(t)}" for t in row] for row in tokens]
    data = _data(attention_view(tiny_model, tokens, labels))
    _, acts = tiny_model.run(tokens, capture=["pattern"])
    np.testing.assert_allclose(data["patterns"], np.asarray(acts["pattern"]), rtol=1e-3, atol=1e-4)
    for name, score in head_scores(tiny_model, tokens).items():
        np.testing.assert_allclose(data["scores"][name], np.asarray(score), rtol=1e-3, atol=1e-4)
    assert data["labels"] == labels and data["text"][0][2][1] == f"q2 {labels[0][2]} → k1 {labels[0][1]}"
    with pytest.raises(ValueError, match="one label per token"):
        attention_view(tiny_model, tokens, labels[:-1])


def test_attention_view_refuses_a_model_without_attention():
    tms = build_model(TMSConfig(n_features=5, d_hidden=2), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="no attention"):
        attention_view(tms, np.zeros((1, 3), int), [["a", "b", "c"]])


class Dictionary:
    """Latent i reads coordinate i (ReLU): codes are known exactly."""

    directions = np.eye(3, 4)

    def encode(self, x):
        return np.maximum(np.asarray(x)[:, :3], 0)


def test_latents_view_shows_top_inputs_histograms_truth_and_maps():
    x = np.zeros((4, 4))
    x[:, 0] = [0.5, 2.0, 0.0, 1.0]  # latent 0 fires on inputs 1, 3, 0 in that order
    x[2, 1] = 3.0  # latent 1 fires once; latent 2 never (dead: not shown)
    features = np.array([[0.0, 1.0, 0.0, 0.0], [0.6, 0.0, 0.0, 0.8]])
    tokens = np.arange(8).reshape(4, 2)
    data = _data(latents_view(Dictionary(), tokens, x, [["a", "b"]] * 4, features=features, grid=(2, 2)))
    l0, l1 = data["latents"]
    assert [l0["id"], l1["id"]] == [0, 1] and l0["freq"] == 0.75 and l1["freq"] == 0.25
    assert [i for i, _ in l0["top"]] == [1, 3, 0] and l0["max"] == 2.0
    assert sum(l0["hist_y"]) == 3 and sum(l1["hist_y"]) == 1
    assert (l0["truth"], l0["cos"]) == (1, 0.6) and (l1["truth"], l1["cos"]) == (0, 1.0)
    assert l0["grid"] == [[0.5, 2.0], [0.0, 1.0]] and data["positions"] == [1, 1, 1, 1]
    with pytest.raises(IndexError, match=r"positions must be in \[-2, 2\)"):
        latents_view(Dictionary(), tokens, x, [["a", "b"]] * 4, positions=2)
    with pytest.raises(ValueError, match="grid"):
        latents_view(Dictionary(), tokens, x, [["a", "b"]] * 4, grid=(3, 3))
    with pytest.raises(ValueError, match="no latent fires"):
        latents_view(Dictionary(), tokens, -np.ones((4, 4)), [["a", "b"]] * 4)



def test_latents_map_over_cells_is_the_mean_of_each_cells_inputs():
    """Chess's board map: several inputs (moves) per cell (the square moved to), the map their mean; empty cells
    are null, not zero."""
    x = np.zeros((4, 4))
    x[:, 0] = [0.5, 2.0, 0.0, 1.0]
    tokens = np.arange(8).reshape(4, 2)
    data = _data(latents_view(Dictionary(), tokens, x, [["a", "b"]] * 4, grid=(2, 2), cells=[3, 3, 0, 0]))
    assert data["latents"][0]["grid"] == [[0.5, None], [None, 1.25]]
    with pytest.raises(ValueError, match="cells must be"):
        latents_view(Dictionary(), tokens, x, [["a", "b"]] * 4, grid=(2, 2), cells=[0, 1, 2, 4])

def test_circuits_view_embeds_scores_ranks_and_the_truth():
    from toymi.circuits.graph import build_graph
    from toymi.circuits.methods import Found
    from toymi.model.transformer import ModelConfig
    from toymi.views import circuits_view

    graph = build_graph(ModelConfig(d_vocab=5, n_ctx=4, n_layers=1, d_model=8, n_heads=2, d_head=4, d_mlp=0))
    n = graph.n_edges  # input -> 6 head inputs, input -> logits, 2 heads -> logits
    scores = np.zeros(n)
    scores[graph.edge_index("a0.h1->logits")] = -3.0
    scores[graph.edge_index("input->a0.h0<v>")] = 2.0
    found = [Found("exact", scores, np.abs(scores) > 1, 1.0, 0.1),
             Found("eap", -scores, np.abs(scores) > 2.5, 1.0, 0.1)]
    data = _data(circuits_view(graph, found, ["a0.h1->logits", "input->a0.h1<k>"]))
    assert data["names"] == graph.edge_names() and data["methods"] == ["exact", "eap"] and data["kept"] == [2, 1]
    assert data["rank"][0][graph.edge_index("a0.h1->logits")] == 0 and data["rank"][0][graph.edge_index(
        "input->a0.h0<v>")] == 1 and sorted(data["rank"][1]) == list(range(n))
    assert data["max"] == [3.0, 3.0] and data["scores"][1] == (-scores).tolist()
    assert sum(data["truth"]) == 2 and data["truth"][graph.edge_index("input->a0.h1<k>")]
    matrix = np.asarray(data["matrix"][0], float)  # sender x receiver, NaN where no edge can be
    assert matrix[graph.senders.index("a0.h1"), graph.receivers.index("logits")] == -3.0
    assert np.isnan(matrix[graph.senders.index("a0.h0"), graph.receivers.index("a0.h1<q>")])
    assert _data(circuits_view(graph, found[:1]))["truth"] is None
    with pytest.raises(ValueError, match="scores cover 3 edges but the graph has"):
        circuits_view(graph, [Found("exact", np.zeros(3), np.zeros(3, bool), 1.0, 0.1)])
    with pytest.raises(KeyError, match="no edge 'a0.h0->a0.h1<q>'"):
        circuits_view(graph, found, ["a0.h0->a0.h1<q>"])
    with pytest.raises(ValueError, match="at least one method"):
        circuits_view(graph, [])


@pytest.mark.slow  # compiles exact edge patching and EAP: seconds
def test_circuits_for_run_embeds_exact_edge_patching_of_the_runs_own_inputs(grokking_run):
    from toymi.circuits.patching import edge_patching
    from toymi.circuits.planted import TargetLogit
    from toymi.run import load_run
    from toymi.views import circuits_for_run

    run = load_run(grokking_run)
    data = _data(circuits_for_run(run, n_inputs=4))
    batch = next(iter(run.task.eval_batches().values()))
    metric = TargetLogit(batch.targets[:4], batch.loss_mask[:4])  # modular targets are answers: all in range
    effects = edge_patching(run.model, batch.tokens[:4], batch.tokens[4:8], metric, direction="noising")
    assert data["methods"] == ["exact", "eap"] and data["names"] == effects.graph.edge_names()
    np.testing.assert_allclose(data["scores"][0], np.asarray(effects.effect), rtol=1e-3, atol=1e-5)
    assert data["truth"] is None  # no known circuit for modular addition
    n = len(batch) // 2  # a small eval set: half of it patched from the other half
    assert f"Inputs: the first {n} {next(iter(run.task.eval_batches()))} inputs" in circuits_for_run(run).body()


@pytest.mark.slow  # compiles exact edge patching and EAP: seconds
def test_circuits_for_an_induction_run_marks_the_circuit_its_heads_form():
    """A run of the induction task whose model has formed the heads (the planted one stands in for a trained one):
    the page's true edges are `toymi.circuits.trained`'s, and exact patching ranks the certain ones first (the judged
    ones, a previous-token head's q and k, read positions, which patching from other tokens leaves as they were)."""
    from pathlib import Path
    from types import SimpleNamespace

    from toymi.circuits.planted import induction
    from toymi.circuits.trained import induction_truth
    from toymi.dissect.attention import repeated_random_tokens
    from toymi.tasks import Induction
    from toymi.views import circuits_for_run

    planted = induction()  # tokens 0..7, BOS 8, 9 positions
    run = SimpleNamespace(model=planted.model, task=Induction(vocab=8, subseq_len=4, n_repeats=2, eval_size=4),
                          directory=Path("planted"), model_step=0)
    data = _data(circuits_for_run(run, methods=("exact",)))
    truth = induction_truth(planted.model, repeated_random_tokens(jax.random.key(0), 16, 4, 8, 8))
    assert {n for n, t in zip(data["names"], data["truth"]) if t} == set(truth.certain + truth.judged)
    assert truth.previous_token_heads == ("a0.h0",) and truth.induction_heads == ("a1.h0",)
    exact = np.abs(np.asarray(data["scores"][0]))
    certain = np.isin(data["names"], truth.certain)
    assert exact[certain].min() > 0.5 and np.all(exact[~np.asarray(data["truth"])] < 1e-6)


def test_page_names_default_to_the_fast_pages_and_all_means_every_page():
    from toymi.errors import ConfigError
    from toymi.views.site import DEFAULT_PAGES, PAGES, page_names

    assert page_names(None) == list(DEFAULT_PAGES) == ["run", "attention", "attribution", "spd"]
    assert page_names(["all"]) == list(PAGES) == ["run", "attention", "circuits", "attribution", "spd"]
    assert page_names(["circuits"]) == ["circuits"]
    with pytest.raises(ConfigError, match=r"unknown pages \['latent'\]"):
        page_names(["run", "latent"])


def test_a_site_written_again_removes_only_the_pages_it_wrote_before_and_leaves_out(grokking_run, tmp_path):
    from toymi.views.site import MANIFEST, write_site

    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.html").write_text("the user's own")  # never written by the site: never removed
    write_site(grokking_run, out, pages=["run"], extra=[View("latents", "an SAE's latents")])
    assert {"run.html", "latents.html", "notes.html", MANIFEST} <= {p.name for p in out.iterdir()}
    write_site(grokking_run, out, pages=["run"])  # the latents page is not part of this site any more
    assert not (out / "latents.html").exists() and (out / "run.html").exists()
    assert (out / "notes.html").read_text() == "the user's own" and 'href="latents.html"' not in (
        out / "index.html").read_text()
    # a damaged manifest (or one naming files outside the site) removes nothing and is written afresh
    (out / "latents.html").write_text("kept")
    (tmp_path / "outside.html").write_text("outside")
    for damaged in ("{not json", json.dumps({"pages": ["../outside", "latents", ".."]})):
        (out / MANIFEST).write_text(damaged)
        write_site(grokking_run, out, pages=["run"])
        assert (tmp_path / "outside.html").exists()
    assert not (out / "latents.html").exists()  # the second manifest did name it: a page of the site, removed
    assert json.loads((out / MANIFEST).read_text()) == {"pages": ["run"]}


@pytest.mark.slow  # trains a TopK SAE for 20 steps: seconds
def test_toymi_view_latents_trains_a_topk_sae_on_the_mlp_neurons(grokking_run, tmp_path):
    from toymi.cli import main
    from toymi.run import load_run
    from toymi.views.quick_sae import site_of

    out = tmp_path / "site"
    assert main(["view", str(grokking_run), "--out", str(out), "--pages", "run", "--latents", "sae",
                 "--sae-steps", "20"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "latents.html", "pages.json", "plotly.min.js",
                                                     "run.html"]
    text = (out / "latents.html").read_text()
    assert "a TopK SAE (256 latents, k = 8, 20 steps) on mlp_post 0" in text
    data = json.loads(re.search(r"const toymiData = (.*?);\n", text, re.S).group(1).replace("<\\/", "</"))
    run = load_run(grokking_run)
    assert len(data["labels"]) == run.task.p ** 2 and data["has_grid"]  # every (a, b), each latent's p x p map
    assert 0 < sum(l["freq"] for l in data["latents"]) <= 8  # top-k: at most k latents fire on an input
    assert site_of(run.model) == ("mlp_post", 0)
    from toymi.model.transformer import ModelConfig

    attn_only = build_model(ModelConfig(d_vocab=5, n_ctx=4, n_layers=2, d_model=8, n_heads=2, d_head=4, d_mlp=0),
                            jax.random.PRNGKey(0))
    assert site_of(attn_only) == ("resid_post", 1)  # no MLP: the last layer's residual stream
    with pytest.raises(SystemExit):  # argparse refuses a kind toymi view does not train
        main(["view", str(grokking_run), "--out", str(out), "--latents", "pca"])


@pytest.mark.slow
def test_latents_for_a_chess_run_draw_each_latent_on_the_board(tmp_path):
    """A chess run's latents page: completed moves as inputs, read where each completes, each latent's map the mean
    activation per square moved to (rank 8 on top)."""
    import types

    import jax

    from toymi.model.transformer import ModelConfig
    from toymi.model.transformer import Transformer
    from toymi.tasks.chess.task import ChessMoves
    from toymi.tasks.chess.tokens import completed_moves
    from toymi.views import latents_for_run

    task = ChessMoves(n_games=20, n_test_games=6, max_plies=8, cache_dir=str(tmp_path))
    dims = task.model_dims()
    model = Transformer(ModelConfig(**dims, d_model=16, n_heads=2, d_mlp=32), jax.random.PRNGKey(0))
    run = types.SimpleNamespace(task=task, model=model, directory=tmp_path / "chess_run")

    class Neurons:  # latent i is MLP neuron i (ReLU): codes are the activations themselves
        directions = np.eye(32)

        def encode(self, x):
            return np.maximum(np.asarray(x), 0)

    data = _data(latents_for_run(run, Neurons(), site="mlp_post", layer=0, n_inputs=40))
    tokens = np.asarray(task.test.tokens)
    games, positions, squares = (x[:40] for x in completed_moves(tokens))
    _, acts = model.run(tokens, capture=["mlp_post"])
    neurons = np.maximum(np.asarray(acts["mlp_post", 0])[games, positions], 0)
    assert data["positions"] == positions.tolist()
    for latent in data["latents"][:3]:
        a = neurons[:, latent["id"]]
        square = int(squares[np.argmax(a)])  # a square this latent fired on: its cell holds the mean there
        row, col = 7 - square // 8, square % 8
        np.testing.assert_allclose(latent["grid"][row][col], a[squares == square].mean(), rtol=2e-3)
        assert len(latent["grid"]) == 8 and all(len(r) == 8 for r in latent["grid"])


def test_quick_sae_latents_refuse_a_model_that_is_not_a_transformer():
    """A TMS run has no layers or positions to read: one line, not a crash inside the SAE's sampler."""
    from types import SimpleNamespace

    from toymi.errors import ConfigError
    from toymi.views.quick_sae import latents_page

    tms = build_model(TMSConfig(n_features=5, d_hidden=2), jax.random.PRNGKey(0))
    with pytest.raises(ConfigError, match="this run's model is a tms model"):
        latents_page(SimpleNamespace(model=tms, task=None, directory=Path("tms_run")))


def _replacement_with_errors():
    """A random 2-layer residual MLP: its own neurons replace layer 0 (exact), a random transcoder layer 1 (its error
    node is not zero), with sparse inputs and every active feature's output traced."""
    import jax.numpy as jnp

    from toymi.circuits.attribution_graph import neuron_transcoders
    from toymi.decompose.transcoder import Transcoder
    from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig

    model = ResidualMLP(ResidualMLPConfig(n_features=6, d_model=12, d_mlp=5, n_layers=2), jax.random.PRNGKey(0))
    layers = [neuron_transcoders(model)[0], Transcoder(12, 12, 8, jax.random.PRNGKey(1), dec_norm=0.5)]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 6)) * (rng.random((3, 6)) < 0.5)
    x[:, 0] = 0.9  # every row has an output to trace
    return model, layers, jnp.asarray(x, jnp.float32), x != 0


def test_attribution_view_draws_the_graphs_own_edges_pruned_by_their_share():
    from toymi.circuits.attribution_graph import attribution_graph
    from toymi.views import attribution_view

    model, layers, x, where = _replacement_with_errors()
    view = attribution_view(model, layers, x, where, min_share=0.1)
    data = _data(view)
    assert view.figure_ids() == ["graph"] and len(data["figures"]) == len(data["summaries"]) == 3
    g = attribution_graph(model, layers, x)
    starts = (0, 5, 13)

    def incoming(b, target):  # every edge into `target` (by its page name), as {source name: value}
        kind, i = target
        if kind == "y":
            out = {f"L{l}·{a - starts[l]}": float(g.latent_output[b, a, i]) for l in (0, 1)
                   for a in range(starts[l], starts[l + 1])}
            out |= {f"x{j}": float(g.residual[b, j, i] + g.skip[b, j, i]) for j in range(6)}
            return out | {f"err L{l}": float(g.error[b, l, i]) for l in (0, 1)}
        out = {f"x{j}": float(g.input_latent[b, j, i]) for j in range(6)}
        out |= {f"L0·{a}": float(g.latent_latent[b, a, i]) for a in range(5)}
        return out | {f"err L{l}": float(g.error_latent[b, l, i]) for l in (0, 1)}

    def node(name):
        if name.startswith("y"):
            return ("y", int(name[1:]))
        layer, index = name[1:].split("·")
        return ("z", starts[int(layer)] + int(index))

    errors_drawn = 0
    for b, edges in enumerate(data["edges"]):
        assert edges, f"example {b} has no edge"
        for source, target, value in edges:
            into = incoming(b, node(target))
            assert value == pytest.approx(into[source], rel=1e-3, abs=1e-6)  # the graph's own edge
            assert abs(value) >= 0.1 * sum(abs(v) for v in into.values()) * (1 - 1e-3)  # ≥ its share
            errors_drawn += source.startswith("err")
        sources, targets = {s for s, _, _ in edges}, {t for _, t, _ in edges}
        # every latent drawn feeds something drawn: the pruning runs backwards from the outputs
        assert {t for t in targets if t.startswith("L")} <= sources
        # and is traced back in turn: a latent drawn as a source has its own large enough incoming edges drawn
        for latent in (n for n in sources if n.startswith("L")):
            into = incoming(b, node(latent))
            if any(abs(v) >= 0.1 * sum(abs(u) for u in into.values()) for v in into.values()):
                assert latent in targets, (b, latent)
        assert {t for _, t, _ in edges if t.startswith("y")} <= {f"y{k}" for k in np.flatnonzero(where[b])}
    assert errors_drawn > 0  # layer 1's random transcoder misses most of its MLP: its error node carries the outputs
    with pytest.raises(ValueError, match=r"rows \[1\] have none"):
        attribution_view(model, layers, x, np.where(np.arange(3)[:, None] == 1, False, where))
    with pytest.raises(ValueError, match="2 output names for 6 outputs"):
        attribution_view(model, layers, x, where, output_names=["a", "b"])


@pytest.mark.slow
def test_attribution_for_run_names_the_gates_and_skips_models_without_an_mlp_stream(grokking_run):
    from toymi.run import load_run
    from toymi.views.attribution_page import attribution_for_run

    assert attribution_for_run(load_run(grokking_run)) is None  # a transformer: no residual-MLP graph
    run = load_run(tiny_run_of("and_gates_quick"))
    view = attribution_for_run(run, n_examples=3)
    data = _data(view)
    assert len(data["figures"]) == 3 and view.title.startswith("Attribution graphs: run, step 20")
    names = set(run.task.output_names())
    traced = {t for edges in data["edges"] for _, t, _ in edges if not t.startswith(("L", "err"))}
    assert traced and traced <= names  # outputs are named by their gate's inputs, e.g. x3∧x7
    assert not any(s.startswith("err") for edges in data["edges"] for s, _, _ in edges)  # exact neurons: no error


def test_transformer_attribution_view_draws_the_graphs_own_edges():
    """A random 2-layer transformer with LayerNorm, its own neurons in layer 0 and a random transcoder in layer 1 (an
    error node per position): every edge drawn is that graph's own edge from a node named for its layer and position,
    and a position equal to the baseline has no node."""
    import jax.numpy as jnp

    from toymi.circuits.frozen_transformer import neuron_transcoders
    from toymi.circuits.transformer_graph import transformer_graph
    from toymi.decompose.transcoder import Transcoder
    from toymi.model.transformer import ModelConfig, Transformer
    from toymi.views.attribution_page import transformer_attribution_view
    from toymi.views.flat_graph import transformer_flat

    cfg = ModelConfig(n_layers=2, d_model=12, n_heads=2, d_head=6, d_mlp=8, d_vocab=7, n_ctx=5, act_fn="relu",
                      normalization="layernorm")
    model = Transformer(cfg, jax.random.PRNGKey(0))
    layers = [neuron_transcoders(model)[0], Transcoder(12, 12, 8, jax.random.PRNGKey(1), dec_norm=0.5)]
    tokens = jnp.array([[1, 2, 3, 4, 5], [6, 5, 4, 3, 2]])
    baseline = jnp.array([1, 0, 0, 0, 0])  # position 0 of the first sequence equals it
    where = np.zeros((2, 7), bool)
    where[:, [2, 5]] = True
    names = ["a", "b", "c", "d", "e"]
    view = transformer_attribution_view(model, layers, tokens, where, baseline=baseline, input_names=names,
                                        min_share=0.1)
    data = _data(view)
    assert view.figure_ids() == ["graph"] and len(data["edges"]) == 2
    for b, edges in enumerate(data["edges"]):
        flat = transformer_flat(transformer_graph(model, layers, tokens[b], baseline=baseline), names)
        index = {n: (kind, i) for kind, names in (("x", flat.input_names), ("z", flat.latent_names),
                                                  ("e", flat.error_names)) for i, n in enumerate(names)}
        matrices = {("x", "y"): flat.input_output, ("z", "y"): flat.latent_output, ("e", "y"): flat.error_output,
                    ("x", "z"): flat.input_latent, ("z", "z"): flat.latent_latent, ("e", "z"): flat.error_latent}
        assert edges
        for source, target, value in edges:
            kind, i = index[source]
            t_kind, t = ("y", int(target.split("@")[0])) if target[0].isdigit() else index[target]
            assert value == pytest.approx(matrices[kind, t_kind][i, t], rel=1e-3, abs=1e-6)
        if b == 0:
            assert not any(s == "a" for s, _, _ in edges)  # equal to the baseline: no node
    assert any(s.startswith("err L1@") for edges in data["edges"] for s, _, _ in edges)
    # only active latents are nodes: an inactive one has no edge in or out, and keeps its own name when others drop
    g = transformer_graph(model, layers, tokens[1], baseline=baseline)
    flat, z = transformer_flat(g, names), 2 * 5 * 8
    full = {k: np.asarray(getattr(g, k)) for k in ("latent_latent", "input_latent", "error_latent", "latent_output")}
    full = {"latent_latent": full["latent_latent"].reshape(z, z), "input_latent": full["input_latent"].reshape(5, z),
            "error_latent": full["error_latent"].reshape(10, z), "latent_output": full["latent_output"].reshape(z, -1)}
    active = np.flatnonzero(np.asarray(g.latents).ravel())
    inactive = np.setdiff1d(np.arange(z), active)
    assert 0 < active.size < z and len(flat.latent_names) == active.size
    assert not full["latent_latent"][inactive].any() and not full["latent_latent"][:, inactive].any()
    assert not full["input_latent"][:, inactive].any() and not full["latent_output"][inactive].any()
    np.testing.assert_allclose(flat.latent_latent, full["latent_latent"][np.ix_(active, active)])
    np.testing.assert_allclose(flat.latent_output, full["latent_output"][active])
    np.testing.assert_allclose(flat.error_latent, full["error_latent"][:, active])
    layer, rest = divmod(int(active[-1]), 5 * 8)
    assert flat.latent_names[-1] == f"L{layer}·{rest % 8}@{names[rest // 8]}"
    with pytest.raises(ValueError, match="where must be"):
        transformer_attribution_view(model, layers, tokens, where[:, :3])


@pytest.mark.slow
def test_attribution_for_run_draws_an_and_gate_transformer():
    from toymi.run import load_run
    from toymi.views.attribution_page import attribution_for_run

    run = load_run(tiny_run_of("and_gates_transformer_quick"))
    view = attribution_for_run(run, n_examples=2)
    data = _data(view)
    # its other default pages read the tokens the task makes of its features (they read `batch.tokens` and failed)
    from toymi.views.attention_page import attention_for_run
    from toymi.views.run_page import run_view

    from toymi.decompose.transcoder import Transcoder
    from toymi.views.latents_page import latents_for_run

    assert "f0=" in attention_for_run(run).html()  # its positions labelled by feature
    assert "head scores on" in run_view(run).html()
    latents = latents_for_run(run, Transcoder(8, 8, 4, jax.random.PRNGKey(0)), n_inputs=16)
    assert len(_data(latents)["labels"]) == 16 and "f0=" in latents.html()
    assert len(data["figures"]) == 2 and view.title.startswith("Attribution graphs: run, step 20")
    drawn = {n for edges in data["edges"] for s, t, _ in edges for n in (s, t)}
    assert drawn & set(run.task.output_names()) and not any(n.startswith("err") for n in drawn)
    inputs = {s for edges in data["edges"] for s, _, _ in edges if s.startswith("x") and "∧" not in s}
    assert inputs and inputs <= {f"x{j}" for j in range(5)}  # positions named by their feature; "read" has no node


def test_pruning_traces_a_chain_of_latents_back_to_its_input():
    """x0 → L0·0 → L1·0 → y0 and nothing else large: every link of the chain is drawn, the small edges are not."""
    from types import SimpleNamespace

    from toymi.views.flat_graph import output_mass_drawn, pruned_edges, residual_flat

    def one(*shape, at=None, value=1.0):
        a = np.zeros((1, *shape))
        if at is not None:
            a[(0, *at)] = value
        return a

    g = SimpleNamespace(  # 2 inputs, 1 latent per layer (latent axis: L0·0 = 0, L1·0 = 1), 1 output
        input_latent=one(2, 2, at=(0, 0)) + one(2, 2, at=(1, 0), value=0.01),
        latent_latent=one(2, 2, at=(0, 1)), error_latent=one(2, 2), latent_output=one(2, 1, at=(1, 0)),
        residual=one(2, 1, at=(1, 0), value=0.01), skip=one(2, 1), error=one(2, 1),
        inputs=one(2), latents=one(2), outputs=one(1))
    flat = residual_flat(g, 0, (1, 1))
    drawn = pruned_edges(flat, [0], min_share=0.05)
    edges = {(s, t): v for s, t, v in drawn}
    assert edges == {(("z", 1), ("y", 0)): 1.0, (("z", 0), ("z", 1)): 1.0, (("x", 0), ("z", 0)): 1.0}
    assert output_mass_drawn(flat, drawn, [0]) == pytest.approx(1.0 / 1.01)  # the 0.01 residual edge is hidden
