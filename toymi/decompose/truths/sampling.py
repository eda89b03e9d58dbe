"""What every truth built from a trained model shares: activations streamed from the model on fresh task inputs
(`activation_sampler`, and the MLP's input→output stream `mlp_io_sampler`), the splices that measure loss
recovered, and the patterns of single inputs. The truths themselves live one file per task in this package.

Everything here asks the model and the task through their interfaces (`task.sample`, `task.model_inputs`,
`model.mlp_input`), never their classes, so any model kind on any task works.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.decompose.splice import check_where, mlp_input_site, per_position_rows, splice_report
from toymi.model.hooked import HookedModel

SPLICE_SEED = 0x5B1CE  # the fixed batch every splice of a truth is measured on


def _rows_per_example(model: HookedModel, task, site: str, layer: int | None,
                      positions: tuple[int, ...] | None) -> int:
    """Rows one example gives (its positions, or 1), from shapes alone (`jax.eval_shape`: nothing runs)."""
    def one(key):
        batch = task.sample(key, 1)
        return captured_rows(model, task.model_inputs(batch, model.kind), site, layer, positions)

    return jax.eval_shape(one, jax.random.PRNGKey(0)).shape[0]


@eqx.filter_jit  # builders call it eagerly: compiled, a vmapped forward is one program rather than op by op
def captured_rows(model: HookedModel, inputs: Array, site: str, layer: int | None,
                  positions: tuple[int, ...] | None) -> Float[Array, "rows d"]:
    _, acts = model.run(inputs, capture=[site])
    value = acts[site] if layer is None else acts[site, layer]  # [batch, ...]
    return _rows(value, model.sites[site].axes, positions)


def _rows(value: Array, axes: tuple[str, ...], positions: tuple[int, ...] | None) -> Float[Array, "rows d"]:
    rows = jax.vmap(lambda v: per_position_rows(v, axes))(value)  # [batch, rows, d]
    if positions is not None:
        rows = rows[:, np.asarray(positions)]
    return rows.reshape(-1, rows.shape[-1])


def activation_sampler(model: HookedModel, task, site: str, layer: int | None = None,
                       positions: tuple[int, ...] | None = None):
    """`sample(key, n) -> [n, d]`: `site` (at `layer`) captured on fresh task inputs, one row per example and
    position (`positions` picks which; None: all). Jit-able with static `n`; the model and task are constants."""
    check_where(model, site, layer)
    per_example = _rows_per_example(model, task, site, layer, positions)

    def sample(key: PRNGKeyArray, n: int) -> Float[Array, "n d"]:
        batch = task.sample(key, -(-n // per_example))
        return captured_rows(model, task.model_inputs(batch, model.kind), site, layer, positions)[:n]

    return sample


def mlp_io_sampler(model: HookedModel, task, layer: int, positions: tuple[int, ...] | None = None):
    """`sample(key, n) -> (x_in [n, d_model], y [n, d_model])`: layer `layer`'s MLP input (see
    `model.mlp_input`) and its output `mlp_out`, on fresh task inputs — a transcoder's training
    stream (`toymi.decompose.transcoder.train_transcoder`)."""
    in_site = mlp_input_site(model)
    check_where(model, "mlp_out", layer)
    per_example = _rows_per_example(model, task, "mlp_out", layer, positions)

    def sample(key: PRNGKeyArray, n: int):
        batch = task.sample(key, -(-n // per_example))
        _, acts = model.run(task.model_inputs(batch, model.kind), capture=[in_site, "mlp_out"])
        x_in = jax.vmap(lambda a: model.mlp_input(a, layer))(acts)
        axes = model.sites["mlp_out"].axes
        return _rows(x_in, axes, positions)[:n], _rows(acts["mlp_out", layer], axes, positions)[:n]

    return sample


def model_splice(model: HookedModel, task, site: str, layer: int | None, batch):
    """`splice(decomposition) -> {metric: value}`: `splice_report` for an SAE-like decomposition at `site`, on a
    fixed `batch`."""
    return lambda decomposition: splice_report(model, task, batch, decomposition, site, layer)


def transcoder_splice(model: HookedModel, task, layer: int, batch):
    """`splice(transcoder) -> {metric: value}`: `splice_report` with the transcoder in place of layer `layer`'s MLP
    (`mlp_out` from the MLP's input), against `mlp_out` zero- and mean-ablated, on a fixed `batch`."""
    return lambda transcoder: splice_report(model, task, batch, transcoder, "mlp_out", layer, transcoder=True)


@eqx.filter_jit
def single_input_patterns(model: HookedModel, inputs: Float[Array, "k n_features"], layer: int,
                          site: str = "mlp_post") -> Float[Array, "k d"]:
    """`site(x) - site(0)` at `layer` for each row `x` of `inputs` (`site`: `mlp_post` or `mlp_out`)."""
    _, acts = model.run(jnp.concatenate([inputs, jnp.zeros((1, inputs.shape[1]))]), capture=[site])
    value = acts[site, layer]
    return value[:-1] - value[-1]


def mlp_out_fields(model: HookedModel, task, site: str, layer: int, batch) -> dict:
    """A transcoder's training stream and splice, for a truth at the MLP's output; nothing for other sites."""
    if site != "mlp_out":
        return {}
    return {"io_sample": mlp_io_sampler(model, task, layer),
            "transcoder_splice": transcoder_splice(model, task, layer, batch)}


def alive_rows(directions: Float[Array, "n d"]) -> Float[Array, "k d"]:
    """The rows that are not all zero (a dead latent's decoder row can be zeroed; it has no direction)."""
    directions = jnp.asarray(directions, jnp.float32)
    keep = np.asarray(jnp.linalg.norm(directions, axis=-1) > 0)
    if not keep.any():
        raise ValueError("every direction is zero: there are no alive latents to score")
    return directions[keep]


