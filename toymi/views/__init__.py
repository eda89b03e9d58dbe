"""Interactive HTML views of runs (Plotly, offline): `toymi view RUN` writes them as a site; each view also shows
itself inline in Jupyter. One module per page: `run_page`, `attention_page`, `latents_page`, `circuits_page`,
`attribution_page`; `site` collects them."""

from toymi.views.attention_page import attention_for_run, attention_view
from toymi.views.attribution_page import attribution_for_run, attribution_view, transformer_attribution_view
from toymi.views.circuits_page import circuits_for_planted, circuits_for_run, circuits_view
from toymi.views.latents_page import latents_for_run, latents_view
from toymi.views.page import View
from toymi.views.run_page import run_view
from toymi.views.site import PAGES, serve, write_site
from toymi.views.tokens import token_labels

__all__ = ["PAGES", "View", "attention_for_run", "attention_view", "attribution_for_run", "attribution_view",
           "circuits_for_planted", "circuits_for_run",
           "circuits_view", "latents_for_run", "latents_view", "run_view", "serve", "token_labels",
           "transformer_attribution_view", "write_site"]
