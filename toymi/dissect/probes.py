"""Linear probes on captured activations, every layer in one vmapped optax run, with a random-model control.

A probe asks whether a quantity (a chess board's squares, a digit, a feature) can be read off a layer's activations
by a linear map. It is only evidence of a learned representation when it beats the same probe on a randomly
initialised model's activations (the control): random features of the input can already be linearly decodable.

- `train_probes(acts [layer, example, d], labels [example, *target], n_classes, is_train)` fits one multi-class
  softmax probe per layer (and per target, e.g. 64 squares × 13 piece classes), vmapped over the layer axis with
  the same minibatches for every layer, so the result equals fitting each layer alone. Adam(W) inside `lax.scan`.
- `probe_with_control(acts, control_acts, ...)` fits the model's and the control's layers in the same call.
- `sequence_examples` turns `[batch, layer, pos, d]` activations and per-position labels into probe examples;
  `split_by_seed` makes a train/test split (optionally by groups, e.g. whole games, so positions of one game never
  land on both sides).

Labels below 0 are ignored (chess marks `PAD` positions -1). Activations are standardised per layer and feature
with train-set statistics (exactly undone in the returned weights), so one learning rate suits every layer.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from toymi.host import to_device
from toymi.train.update import update


class ProbeResult(eqx.Module):
    """Per-layer probe results. Accuracies count every labelled (example, target) pair; class accuracies are
    recalls (NaN for a class absent from the split)."""

    train_accuracy: Float[Array, " layer"]
    test_accuracy: Float[Array, " layer"]
    train_class_accuracy: Float[Array, "layer cls"]
    test_class_accuracy: Float[Array, "layer cls"]
    test_target_accuracy: Float[Array, "layer target"]
    train_loss: Float[Array, "layer step"]  # the optimised (minibatch) loss at every step
    weights: Float[Array, "layer d target cls"]  # in the activations' own coordinates
    bias: Float[Array, "layer target cls"]


def split_by_seed(n: int, test_fraction: float = 0.2, seed: int = 0, groups=None) -> np.ndarray:
    """Boolean `is_train [n]`: a random `test_fraction` of the examples (or of the distinct `groups`, when given:
    every example of a group lands on the same side) is held out."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {groups.shape}")
    unique = np.unique(groups)
    n_test = int(round(test_fraction * len(unique)))
    if not 0 < n_test < len(unique):
        raise ValueError(f"test_fraction={test_fraction} of {len(unique)} groups leaves an empty split")
    test = np.random.default_rng(seed).choice(unique, n_test, replace=False)
    return ~np.isin(groups, test)


def sequence_examples(
    acts: Float[Array, "batch layer pos d"], labels: Int[Array, "batch pos *target"],
    is_train: Bool[Array, " batch"] | None = None,
) -> tuple[Float[Array, "layer example d"], Int[Array, "example *target"], np.ndarray | None]:
    """Every (sequence, position) with at least one label (>= 0) as a probe example, layer axis first.

    **Arguments:** `acts` as `acts[site]` of a batch run gives them; `labels` per position (e.g. chess's
    `board [game, pos, 64]`); optionally a per-sequence `is_train`, expanded to the examples.

    **Returns:** `(acts [layer, example, d], labels [example, *target], is_train [example] or None)`.
    """
    acts, labels = jnp.asarray(acts), np.asarray(labels)
    if acts.ndim != 4 or labels.shape[:2] != (acts.shape[0], acts.shape[2]):
        raise ValueError(f"acts must be [batch, layer, pos, d] and labels [batch, pos, ...] with the same batch "
                         f"and pos; got {acts.shape} and {labels.shape}")
    flat = labels.reshape(labels.shape[0] * labels.shape[1], -1)
    keep = np.flatnonzero((flat >= 0).any(1))
    x = jnp.moveaxis(acts, 1, 0).reshape(acts.shape[1], -1, acts.shape[-1])[:, keep]
    y = labels.reshape(-1, *labels.shape[2:])[keep]
    split = None if is_train is None else np.repeat(np.asarray(is_train, bool), labels.shape[1])[keep]
    return x, y, split


def random_like(model: eqx.Module, key: PRNGKeyArray) -> eqx.Module:
    """A freshly initialised model of the same kind and config: the probe control."""
    return type(model)(model.config, key)


def train_probes(
    acts: Float[Array, "layer example d"], labels: Int[Array, "example *target"], n_classes: int,
    is_train: Bool[Array, " example"], *, steps: int = 500, lr: float = 1e-2, weight_decay: float = 1e-4,
    batch_size: int | None = None, key: PRNGKeyArray | None = None,
) -> ProbeResult:
    """Fit a linear softmax probe per layer (and per target) and score it on both splits, in one compiled call.

    **Arguments:**

    - `acts`: `[layer, example, d]` (`sequence_examples`, or `jnp.moveaxis(acts[site], 1, 0)` for one position).
    - `labels`: `[example]` or `[example, target]` integers in `[0, n_classes)`; negative = no label.
    - `n_classes`: classes per target.
    - `is_train`: boolean `[example]`; the rest is the test split (`split_by_seed`).
    - `steps`, `lr`, `weight_decay`: AdamW from zero weights (the problem is convex; zero makes it deterministic).
    - `batch_size`: None for full-batch steps; else minibatches drawn with `key`, the same for every layer.

    **Returns:** a `ProbeResult` over the layer axis.
    """
    acts = jnp.asarray(acts)
    labels = np.asarray(labels)
    is_train = np.asarray(is_train, bool)
    if acts.ndim != 3:
        raise ValueError(f"acts must be [layer, example, d], got shape {acts.shape}")
    if labels.ndim not in (1, 2) or labels.shape[0] != acts.shape[1] or is_train.shape != (acts.shape[1],):
        raise ValueError(f"labels must be [example] or [example, target] and is_train [example] with "
                         f"example = {acts.shape[1]}; got {labels.shape} and {is_train.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.max() >= n_classes:
        raise ValueError(f"labels must be integers below n_classes={n_classes} (negative = unlabelled)")
    if not is_train.any() or is_train.all():
        raise ValueError("is_train must hold both train and test examples")
    if batch_size is not None and key is None:
        raise ValueError("minibatch probes (batch_size) need a key")
    labels2 = labels.reshape(labels.shape[0], -1)
    train, test = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    key = jax.random.PRNGKey(0) if key is None else key
    return _fit_and_score(acts[:, train], to_device(labels2[train]), acts[:, test], to_device(labels2[test]),
                          key, n_classes, steps, lr, weight_decay, batch_size)


def probe_with_control(
    acts: Float[Array, "layer example d"], control_acts: Float[Array, "layer example d"],
    labels: Int[Array, "example *target"], n_classes: int, is_train: Bool[Array, " example"], **kwargs,
) -> tuple[ProbeResult, ProbeResult]:
    """`train_probes` on a model's and its control's activations together (their layers side by side in one
    vmapped call); returns `(model, control)`."""
    if acts.shape != control_acts.shape:
        raise ValueError(f"model and control activations differ in shape: {acts.shape} vs {control_acts.shape}")
    both = train_probes(jnp.concatenate([acts, control_acts]), labels, n_classes, is_train, **kwargs)
    n = acts.shape[0]
    return jax.tree.map(lambda x: x[:n], both), jax.tree.map(lambda x: x[n:], both)


@eqx.filter_jit
def _capture(model, tokens, site):
    return model.run(tokens, capture=[site])[1][site]


def capture_site(model: eqx.Module, tokens: Int[Array, "batch pos"], site: str) -> Float[Array, "batch layer pos d"]:
    """`model.run(tokens, capture=[site])[1][site]`, compiled (a model and its control share the program)."""
    return _capture(model, jnp.asarray(tokens), site)


def probe_model(
    model: eqx.Module, tokens: Int[Array, "batch pos"], labels: Int[Array, "batch pos *target"], n_classes: int,
    is_train: Bool[Array, " batch"], *, site: str = "resid_post", control_key: PRNGKeyArray | None = None,
    **kwargs,
) -> tuple[ProbeResult, ProbeResult]:
    """Probe every layer of `site` in `model` and in a randomly initialised model of the same config (the control,
    from `control_key`), on the same examples and split, in one fit. `is_train` is per sequence, so the positions
    of one sequence stay on one side. Returns `(model, control)`; `kwargs` go to `train_probes`."""
    control = random_like(model, jax.random.PRNGKey(1) if control_key is None else control_key)
    site_axes = len(model.sites[site].axes) if site in model.sites else None
    if site_axes != 2 or not model.sites[site].per_layer:
        raise ValueError(f"probe_model reads a per-layer [pos, d] site such as resid_post; got {site!r}")
    pair = [sequence_examples(capture_site(m, tokens, site), labels, is_train) for m in (model, control)]
    (x, y, split), (x_control, _, _) = pair
    return probe_with_control(x, x_control, y, n_classes, split, **kwargs)


# ---- the compiled fit ------------------------------------------------------------------------------------------

def _logits(params, x):
    W, b = params
    return jnp.einsum("nd,dtc->ntc", x, W) + b


def _loss(params, x, y):
    logp = jax.nn.log_softmax(_logits(params, x), -1)
    labelled = y >= 0
    nll = -jnp.take_along_axis(logp, jnp.maximum(y, 0)[..., None], -1)[..., 0]
    return (nll * labelled).sum() / jnp.maximum(labelled.sum(), 1)


def _scores(params, x, y, n_classes):
    pred = _logits(params, x).argmax(-1)
    labelled = y >= 0
    correct = (pred == y) & labelled
    accuracy = correct.sum() / jnp.maximum(labelled.sum(), 1)
    onehot = jax.nn.one_hot(y, n_classes, dtype=jnp.float32)  # zero rows for y < 0
    per_class_n = onehot.sum((0, 1))
    per_class = jnp.where(per_class_n > 0, (onehot * correct[..., None]).sum((0, 1)) / per_class_n, jnp.nan)
    per_target = correct.sum(0) / jnp.maximum(labelled.sum(0), 1)
    return accuracy, per_class, per_target


@eqx.filter_jit
def _fit_and_score(x_train, y_train, x_test, y_test, key, n_classes, steps, lr, weight_decay, batch_size):
    d, n_targets = x_train.shape[-1], y_train.shape[-1]
    optimizer = optax.adamw(lr, weight_decay=weight_decay)
    n_train = x_train.shape[1]
    batches = (None if batch_size is None
               else jax.random.randint(key, (steps, batch_size), 0, n_train))  # shared by every layer

    def fit(x, x_te):
        mean = x.mean(0)
        scale = 1 / (x.std(0) + 1e-6)
        z = (x - mean) * scale
        params = (jnp.zeros((d, n_targets, n_classes)), jnp.zeros((n_targets, n_classes)))

        def step(carry, idx):
            batch = (z, y_train) if idx is None else (z[idx], y_train[idx])
            params, opt_state, loss, _ = update(lambda p, b: (_loss(p, *b), None), optimizer, *carry, batch)
            return (params, opt_state), loss

        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), batches, length=steps)
        W = params[0] * scale[:, None, None]  # back to raw coordinates: z @ W = x @ (scale W) - mean @ (scale W)
        b = params[1] - jnp.einsum("d,dtc->tc", mean, W)
        tr, tr_cls, _ = _scores((W, b), x, y_train, n_classes)
        te, te_cls, te_target = _scores((W, b), x_te, y_test, n_classes)
        return ProbeResult(tr, te, tr_cls, te_cls, te_target, losses, W, b)

    return jax.vmap(fit)(x_train, x_test)


__all__ = ["ProbeResult", "capture_site", "probe_model", "probe_with_control", "random_like", "sequence_examples",
           "split_by_seed", "train_probes"]
