"""Each page in headless Chromium: it loads without console errors, its plots are drawn, a click or the slider
changes what is shown, and a screenshot of it is non-blank and of the expected size."""

import numpy as np
import pytest

from toymi.decompose.baselines import nmf
from toymi.run import load_run
from toymi.views import latents_for_run, write_site
from views.browser import VIEWPORT, Page, check_screenshot

pytestmark = pytest.mark.slow

FLAT = "v => (v !== null && typeof v === 'object' && 'length' in v) ? Array.from(v).flatMap(FLAT) : [v]"


def values(page: Page, div: str, trace: int, key: str) -> np.ndarray:
    """A drawn trace's data (Plotly's decoded copy, `_fullData`), flattened."""
    return np.asarray(page.js(f"([d, t, k]) => {{ const FLAT = {FLAT}; "
                              "return FLAT(document.getElementById(d)._fullData[t][k]); }", [div, trace, key]), float)


@pytest.mark.parametrize("which, key", [("grokking_run", "y"), ("induction_run", "z")])
def test_run_page(which, key, request, chromium, tmp_path):
    """Grokking's slider swaps Fourier spectra (bars, `y`); induction's swaps head-score heatmaps (`z`)."""
    run_dir = request.getfixturevalue(which)
    write_site(run_dir, tmp_path / "site", pages=["run"])
    page = Page(chromium, tmp_path / "site" / "run.html")
    assert page.plots() == ["curves", "checkpoints"]
    n_metrics = len([k for k in load_run(run_dir).metrics if k not in ("step", "elapsed_s")])
    assert page.js("() => document.getElementById('curves').data.length") == n_metrics  # a curve per metric
    assert page.js("() => document.getElementById('curves').layout.yaxis.type") == "log"
    page.page.get_by_text("y linear").click()
    assert page.js("() => document.getElementById('curves').layout.yaxis.type") == "linear"
    slider = "document.getElementById('checkpoints').layout.sliders[0]"
    assert page.js(f"() => {slider}.steps.map(s => +s.label)") == load_run(run_dir).steps
    # The slider starts at the last checkpoint; clicking the left end of its rail shows step 0's.
    before = values(page, "checkpoints", 0, key)
    first = np.asarray(page.js(f"() => {slider}.steps[0].args[0].{key}[0]"), float).reshape(-1)
    assert not np.allclose(before, first)  # the measure moved during training
    rail = page.page.locator("#checkpoints .slider-rail-rect")
    rail.scroll_into_view_if_needed()
    box = rail.bounding_box()
    page.page.mouse.click(box["x"] + 2, box["y"] + box["height"] / 2)
    page.page.wait_for_function(f"() => {slider}.active === 0")
    page.page.wait_for_timeout(600)  # the slider's transition
    np.testing.assert_allclose(values(page, "checkpoints", 0, key), first, rtol=1e-6)
    page.page.evaluate("window.scrollTo(0, 0)")
    check_screenshot(page.screenshot(tmp_path / "run.png"), VIEWPORT["width"], VIEWPORT["height"])
    assert page.errors == []


def test_attention_page(induction_run, chromium, tmp_path):
    write_site(induction_run, tmp_path / "site", pages=["attention"])
    page = Page(chromium, tmp_path / "site" / "attention.html")
    assert page.plots() == ["scores", "heads", "pattern"]
    selected = page.js("() => document.getElementById('selected').textContent")
    before = values(page, "pattern", 0, "z")
    # Click the centre of the small multiple of a head other than the selected one: it becomes the large pattern.
    n_heads = page.js("() => toymiData.n_heads")
    other = next(f"L{l}H{h}" for l in range(2) for h in range(n_heads) if f"L{l}H{h} " not in selected)
    index = int(other[1]) * n_heads + int(other[3])
    axis = page.page.locator(f"#heads .xy{'' if index == 0 else index + 1} .nsewdrag").first
    axis.click()
    assert page.js("() => document.getElementById('selected').textContent").startswith(f"selected: {other} ")
    after = values(page, "pattern", 0, "z")
    assert not np.allclose(before, after)
    expected = np.asarray(page.js("([l, h]) => toymiData.patterns[0][l][h]", [int(other[1]), int(other[3])]))
    np.testing.assert_allclose(after, expected.reshape(-1))
    page.page.select_option("#input", "1")  # another input: every plot and the tick labels follow
    labels = page.js("() => document.getElementById('pattern').layout.xaxis.ticktext")
    assert labels == page.js("() => toymiData.labels[1]")
    check_screenshot(page.screenshot(tmp_path / "attention.png"), VIEWPORT["width"], VIEWPORT["height"])
    assert page.errors == []


def test_latents_page(grokking_run, chromium, tmp_path):
    run = load_run(grokking_run)
    view = latents_for_run(run, nmf(_mlp_rows(run), 6))
    path = view.save(tmp_path / "latents.html")
    page = Page(chromium, path)
    assert page.plots() == ["overview", "histogram", "grid"]
    first_rows = page.js("() => document.getElementById('top').rows.length")
    grid_before = values(page, "grid", 0, "z")
    bars = page.page.locator("#overview .point")
    assert bars.count() == page.js("() => toymiData.latents.length") > 1
    box = bars.nth(1).bounding_box()  # Plotly's drag layer takes the clicks, and finds the bar under the mouse
    page.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] - 2)
    assert page.js("() => document.getElementById('latent').value") == "1"
    grid_after = values(page, "grid", 0, "z")
    np.testing.assert_allclose(grid_after, np.asarray(page.js("() => toymiData.latents[1].grid")).reshape(-1))
    assert not np.allclose(grid_before, grid_after)
    assert first_rows > 0 and page.js("() => document.getElementById('info').textContent").startswith("latent ")
    check_screenshot(page.screenshot(tmp_path / "latents.png"), VIEWPORT["width"], VIEWPORT["height"])
    assert page.errors == []


def _mlp_rows(run) -> np.ndarray:
    _, acts = run.model.run(run.task.all_pairs().tokens, capture=["mlp_post"])
    return np.asarray(acts["mlp_post", -1][:, -1])


def test_toymi_view_writes_an_offline_site_and_serves_it(grokking_run, tmp_path, capsys):
    import threading
    import urllib.request

    from toymi.cli import main
    from toymi.views.site import make_server

    out = tmp_path / "site"
    assert main(["view", str(grokking_run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["attention.html", "index.html", "pages.json", "plotly.min.js",
                                                     "run.html"]
    for page in ("run.html", "attention.html"):
        text = (out / page).read_text()
        assert '<script src="plotly.min.js"></script>' in text and "cdn." not in text
    assert main(["view", str(grokking_run), "--out", str(out), "--pages", "circuits"]) == 0  # opt-in: it compiles
    # the site is what this call wrote: the earlier call's pages, no longer in its index, are gone
    assert sorted(p.name for p in out.glob("*.html")) == ["circuits.html", "index.html"]
    text = (out / "circuits.html").read_text()
    assert '<script src="plotly.min.js"></script>' in text and "cdn." not in text
    assert main(["view", str(grokking_run), "--out", str(out), "--pages", "run,circuit"]) == 2
    expected = "unknown pages ['circuit']; have ['attention', 'attribution', 'circuits', 'run', 'spd'] (or 'all')"
    assert expected in capsys.readouterr().err
    with make_server(out, 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/circuits.html") as response:
            assert response.read() == (out / "circuits.html").read_bytes()
        server.shutdown()


def edge_styles(page: Page) -> list[tuple[str, float]]:
    """(colour, width) of every edge trace of the circuits graph, as drawn."""
    script = ("() => document.getElementById('graph')._fullData.slice(0, toymiData.names.length)"
              ".map(t => [t.line.color, t.line.width])")
    return [tuple(x) for x in page.js(script)]


def test_circuits_page(chromium, tmp_path):
    """Planted induction: the page starts at exact patching's circuit (the 7 true edges, green, widest for the
    largest |score|); the slider keeps fewer edges, and true edges it drops turn red and dashed; the menu switches
    the method, and the score map follows."""
    from toymi.circuits.planted import induction
    from toymi.views import circuits_for_planted

    path = circuits_for_planted(induction(), methods=("exact", "eap")).save(tmp_path / "circuits.html")
    page = Page(chromium, path)
    assert page.plots() == ["graph", "scores"]
    truth, scores = page.js("() => toymiData.truth"), np.asarray(page.js("() => toymiData.scores[0]"))
    styles = edge_styles(page)
    colours = page.js("() => toymiData.colours")
    assert [c == colours["true_found"] for c, _ in styles] == truth  # exact finds the circuit, and only it
    widths = np.array([w for _, w in styles])
    biggest = int(np.argmax(np.abs(scores)))
    assert widths[biggest] == widths.max() > widths[~np.asarray(truth)].max()
    assert "7 of 7 true edges found, 0 false" in page.js("() => document.getElementById('summary').textContent")
    page.page.locator("#keep").fill("3")  # the top 3 edges only
    styles = edge_styles(page)
    assert sum(c == colours["true_found"] for c, _ in styles) == 3
    assert sum(c == colours["true_missed"] for c, _ in styles) == 4
    assert page.js("() => document.getElementById('graph')._fullData.filter(t => t.line && t.line.dash === 'dash')"
                   ".length") == 4 + 1  # the missed edges, and the legend's sample of them
    before = values(page, "scores", 0, "z")
    page.page.select_option("#method", "1")
    assert page.js("() => document.getElementById('keep').value") == str(page.js("() => toymiData.kept[1]"))
    after = values(page, "scores", 0, "z")
    np.testing.assert_allclose(after, np.asarray(page.js("() => toymiData.matrix[1]"), float).reshape(-1))
    assert not np.allclose(np.nan_to_num(before), np.nan_to_num(after))
    assert page.js("() => document.getElementById('summary').textContent").startswith("eap: top ")
    check_screenshot(page.screenshot(tmp_path / "circuits.png"), VIEWPORT["width"], VIEWPORT["height"])
    assert page.errors == []


def test_a_view_renders_inline_as_in_a_notebook(tiny_model, tokens, chromium, tmp_path):
    """What Jupyter shows (`_repr_html_`, an iframe of the whole page) draws its plots and reacts to a click."""
    from toymi.views import attention_view

    view = attention_view(tiny_model, tokens, [[str(int(t)) for t in row] for row in tokens])
    path = tmp_path / "notebook.html"
    path.write_text(f"<html><body><p>a notebook cell</p>{view._repr_html_()}</body></html>")
    page = chromium.new_page(viewport=VIEWPORT)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    frame = page.frame_locator("iframe")
    frame.locator("#pattern .main-svg").first.wait_for()
    assert frame.locator(".js-plotly-plot").count() == 3
    frame.locator("#input").select_option("2")
    assert "on input 2" in frame.locator("#pattern .gtitle").text_content()
    page.close()
    assert errors == []


@pytest.mark.parametrize("spec", ["and_gates_quick", "and_gates_transformer_quick"])
def test_attribution_page(spec, chromium, tmp_path):
    """A tiny AND-gate run (residual MLP, transformer): the graph is drawn, the example menu swaps in that example's
    graph and summary."""
    from tiny_runs import tiny_run

    write_site(tiny_run(spec), tmp_path / "site", pages=["attribution"])
    page = Page(chromium, tmp_path / "site" / "attribution.html")
    assert page.plots() == ["graph"]
    summary = "() => document.getElementById('summary').textContent"
    assert page.js(summary) == page.js("() => toymiData.summaries[0]")
    nodes = "() => document.getElementById('graph').data.find(t => t.mode === 'markers+text').text"
    page.page.select_option("#example", "1")  # another input (each distinct input appears once)
    assert page.js(summary) == page.js("() => toymiData.summaries[1]") != page.js("() => toymiData.summaries[0]")
    assert page.js(nodes) == page.js("() => toymiData.figures[1].data.find(t => t.mode === 'markers+text').text")
    check_screenshot(page.screenshot(tmp_path / "attribution.png", full_page=True), VIEWPORT["width"],
                     VIEWPORT["height"] // 2)
    assert page.errors == []


def test_induction_attribution_page(induction_run, chromium, tmp_path):
    """A tiny induction run: both panels drawn (bars per position, the head's pair terms), the example menu swaps in
    that example's figure and summary."""
    write_site(induction_run, tmp_path / "site", pages=["attribution"])  # attribution_for_run picks the induction page
    page = Page(chromium, tmp_path / "site" / "attribution.html")
    assert page.plots() == ["induction"] and page.js("() => document.title") == "Attribution: run, step 20"
    assert page.js("() => toymiData.summaries.every(s => s.startsWith('t = '))")
    drawn = "() => document.getElementById('induction')._fullData.map(t => t.type)"
    assert page.js(drawn) == ["bar", "bar", "heatmap"]
    summary = "() => document.getElementById('summary').textContent"
    assert page.js(summary) == page.js("() => toymiData.summaries[0]")
    page.page.select_option("#example", "1")
    assert page.js(summary) == page.js("() => toymiData.summaries[1]") != page.js("() => toymiData.summaries[0]")
    check_screenshot(page.screenshot(tmp_path / "induction_attribution.png", full_page=True), VIEWPORT["width"],
                     VIEWPORT["height"] // 2)
    assert page.errors == []


def test_induction_attribution_page_after_an_mlp(chromium, tmp_path):
    """With an MLP before the drawn head, the page's second heat map (the score over graph nodes) renders below the
    first, with its own colour bar, and the page has no console errors."""
    import numpy as np

    from toymi.circuits.frozen_transformer import neuron_transcoders
    from toymi.views.induction_attribution_page import induction_attribution_view
    from transformer_models import model

    m = model(2, "layernorm", seed=3)
    tokens = np.array([[1, 4, 2, 1, 4, 2], [3, 5, 7, 3, 5, 7]])
    induction_attribution_view(m, tokens, [4, 4], neuron_transcoders(m), head=(1, 1)).save(tmp_path / "page.html")
    page = Page(chromium, tmp_path / "page.html")
    drawn = "() => document.getElementById('induction')._fullData.map(t => [t.type, t.showscale])"
    assert page.js(drawn) == [["bar", None], ["bar", None], ["heatmap", True], ["heatmap", True]]
    rows = "() => document.querySelectorAll('#induction .heatmaplayer image').length"
    assert page.js(rows) == 2  # both maps painted
    check_screenshot(page.screenshot(tmp_path / "mlp.png", full_page=True), VIEWPORT["width"], VIEWPORT["height"])
    assert page.errors == []
