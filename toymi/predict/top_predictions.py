"""`show`: the model's top-k next tokens at every scored position of an input, with probabilities, in the task's
words (TransformerLens's `test_prompt`, for toymi's tasks)."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.predict.inputs import prompt_tokens


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The model's prediction at one position.

    - `position`, `token`: the position and its token as text;
    - `top`: the `k` likeliest next tokens as `(text, probability)`, likeliest first (`top_ids`: their ids);
    - `actual`, `actual_probability`, `actual_rank`: the input's own next token (text), its probability and its rank
      among every output (0 = the top); None at the input's last position.
    """

    position: int
    token: str
    top: tuple[tuple[str, float], ...]
    top_ids: tuple[int, ...]
    actual: str | None = None
    actual_probability: float | None = None
    actual_rank: int | None = None


@eqx.filter_jit
def _probabilities(model, tokens: Int[Array, " pos"]) -> Float[Array, "pos vocab"]:
    return jax.nn.softmax(model.forward(tokens)[0].astype("float32"), axis=-1)


def show(model, task, input, k: int = 5, verbose: bool = True) -> list[Prediction]:
    """Print (unless `verbose=False`) and return the model's top-`k` predictions at each scored position.

    **Arguments:**

    - `model`: a transformer trained on `task`.
    - `task`: the task (it renders tokens and says which positions are scored).
    - `input`: one sequence, as text (`"12345+67890="`, read with `task.from_string`) or `[pos]` token ids.
    - `k`: how many predictions per position.

    **Returns:** one `Prediction` per scored position of the input (`task.shown_positions`: padding is skipped).
    """
    if isinstance(input, str):
        input = task.from_string(input)
    input = np.asarray(input)
    if input.ndim != 1:
        raise ValueError(f"show takes one sequence ([pos] tokens or a string), got shape {input.shape}")
    # One token past n_ctx is only a target (modular arithmetic's answer after `a b =`): read it, do not feed it.
    tokens = input[:-1] if len(input) == model.config.n_ctx + 1 else input
    prompt_tokens(model, task, tokens, "show")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    probs = np.asarray(_probabilities(model, jnp.asarray(tokens)))
    k = min(k, probs.shape[-1])
    words, tokens = task.render_tokens(input), input
    render = lambda i: task.render_tokens(np.asarray([i]))[0]  # noqa: E731  output ids share the input's numbering
    out = []
    for pos in task.shown_positions(tokens[: len(probs)]):
        order = np.argsort(-probs[pos], kind="stable")
        top = tuple((render(int(i)), float(probs[pos, i])) for i in order[:k])
        actual = {}
        # The next token, unless it is past the input or fills it after its end (chess's PAD: never a target).
        if pos + 1 < len(tokens) and tokens[pos + 1] < probs.shape[-1] and tokens[pos + 1] != task.padding_token:
            nxt = int(tokens[pos + 1])
            actual = dict(actual=words[pos + 1], actual_probability=float(probs[pos, nxt]),
                          actual_rank=int(np.nonzero(order == nxt)[0][0]))
        out.append(Prediction(pos, words[pos], top, tuple(int(i) for i in order[:k]), **actual))
    if verbose:
        print(format_predictions(task.to_string(tokens), out))
    return out


def format_predictions(text: str, predictions: list[Prediction]) -> str:
    """The table `show` prints: per position its token, the actual next token's rank and probability, the top k."""
    lines = [f"input: {text}"]
    for p in predictions:
        head = f"pos {p.position:>3} {p.token!r:>8} ->"
        if p.actual is not None:
            head += f" actual {p.actual!r} rank {p.actual_rank} p={p.actual_probability:.3f} |"
        lines.append(head + " top: " + "  ".join(f"{t!r} {q:.3f}" for t, q in p.top))
    return "\n".join(lines)
