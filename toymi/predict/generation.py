"""`generate`: continue a prompt greedily or by sampling, under the task's own stopping rule, compiled.

The loop is one `lax.while_loop` over a buffer of `n_ctx + 1` tokens per sequence. Each step runs the model on the
buffer's first `n_ctx` tokens (causal attention: the unwritten tail cannot change the prediction at `pos - 1`),
chooses the token at `pos`, and asks the task's `generation_step` whether to keep it and whether to stop. The prompt
length and the number of new tokens are traced, so one compile serves every prompt of a batch size.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from toymi.predict.inputs import prompt_tokens

TRACES = [0]  # times `_generate` was traced (a compile each): the tests check that calls reuse one


@eqx.filter_jit
def _generate(model, task, buffer: Int[Array, "batch buffer"], start: Int[Array, ""], limit: Int[Array, ""],
              temperature: Array, key: PRNGKeyArray) -> tuple[Int[Array, "batch buffer"], Int[Array, " batch"]]:
    TRACES[0] += 1
    n_ctx = model.config.n_ctx
    batch = buffer.shape[0]

    def body(state):
        i, buf, length, done, key = state
        key, sub = jax.random.split(key)
        pos = start + i
        logits = jax.vmap(lambda t: model.forward(t[:n_ctx])[0])(buf)[:, pos - 1].astype(jnp.float32)
        sampled = jax.random.categorical(sub, logits / jnp.maximum(temperature, 1e-6), axis=-1)
        token = jnp.where(temperature > 0, sampled, logits.argmax(-1)).astype(buf.dtype)
        keep, stop = jax.vmap(task.generation_step, in_axes=(0, None, 0, None))(buf, pos, token, i)
        write = ~done & keep
        buf = buf.at[:, pos].set(jnp.where(write, token, buf[:, pos]))
        return i + 1, buf, length + write, done | stop | ~keep, key

    def cond(state):
        i, _, _, done, _ = state
        return (i < limit) & ~done.all()

    state = (jnp.asarray(0), buffer, jnp.zeros(batch, jnp.int32), jnp.zeros(batch, bool), key)
    _, buffer, length, _, _ = jax.lax.while_loop(cond, body, state)
    return buffer, length


def generate(model, task, prompt, *, temperature: float = 0.0, key: PRNGKeyArray | None = None
             ) -> Int[Array, "*batch pos"]:
    """Continue `prompt` until the task's stopping rule ends it: the answer digits (addition), the answer
    (modular arithmetic), one move (chess), the rest of the sequence (induction).

    **Arguments:**

    - `model`: a transformer trained on `task`.
    - `task`: the task (its `generation_limit` and `generation_step` are the stopping rule).
    - `prompt`: text (read with `task.from_string`), `[pos]` or `[batch, pos]` token ids.
    - `temperature`: 0 for greedy (argmax), else sample from `softmax(logits / temperature)`.
    - `key`: a `jax.random` key, required when sampling.

    **Returns:** int32 tokens, prompt and continuation: `[pos + new]` for one prompt; `[batch, pos + most new]` for a
    batch, a row that stopped earlier padded with 0 (chess's `PAD`; only chess stops rows at different lengths).
    """
    tokens = prompt_tokens(model, task, prompt, "generate")
    single = tokens.ndim == 1
    tokens = tokens[None] if single else tokens
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature < np.inf:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if temperature > 0 and key is None:
        raise ValueError("sampling (temperature > 0) needs a key: generate(..., key=jax.random.PRNGKey(0))")
    limit = task.generation_limit(tokens)
    n_ctx = model.config.n_ctx
    if tokens.shape[1] + limit > n_ctx + 1:
        raise ValueError(f"{tokens.shape[1]} prompt tokens and {limit} new ones exceed what the model reads "
                         f"(n_ctx = {n_ctx})")
    buffer = np.zeros((tokens.shape[0], n_ctx + 1), np.int32)
    buffer[:, : tokens.shape[1]] = tokens
    key = jax.random.PRNGKey(0) if key is None else key
    out, length = _generate(model, task, jnp.asarray(buffer), jnp.asarray(tokens.shape[1], jnp.int32),
                            jnp.asarray(limit, jnp.int32), jnp.asarray(temperature, jnp.float32), key)
    end = tokens.shape[1] + int(np.max(np.asarray(length)))
    return out[0, :end] if single else out[:, :end]
