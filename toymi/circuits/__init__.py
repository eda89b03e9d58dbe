"""Circuit discovery scored against known circuits.

The edge graph of a `Transformer` (`graph`), its forward pass with edges as data (`forward`), exact patching of every
edge in one compiled call (`patching`, `exact`), discovery methods (`attribution`: EAP, EAP-IG, node baselines;
`acdc`; `pruning`; `methods.discover`), scoring (`scoring`: ROC AUC, faithfulness, CPR / CMD), and models whose
circuits are known (`planted`; `trained` for a trained induction model). `toymi circuits TARGET` runs it all.
Attribution graphs through transcoders stand apart: their nodes are input features (or positions), latents and
outputs rather than a transformer's components. `attribution_graph` builds them for the residual MLP of any depth
(scored by `attribution_scores`), `transformer_graph` for a transformer, attention frozen per example.
`coactivation` stands apart too: it clusters a decomposition's units by co-activation and scores the clusters
against the AND gates' circuits (transcoder clustering).
"""
