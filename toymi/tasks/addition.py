"""Multi-digit addition (Quirke & Barez 2023, "Understanding Addition in Transformers"), sampled on device.

One question is the sequence `a_{n-1} .. a_0 + b_{n-1} .. b_0 = s_n s_{n-1} .. s_0`: every number is written most
significant digit first, as in the paper, and the answer has `n + 1` digits (`s_n` is 0 or the final carry). Tokens:
digits 0-9, `+` = 10, `=` = 11; sequences are `3n + 3` long (18 for n = 5, the paper's n_ctx).

Position `i` predicts token `i + 1`, so the answer digits `s_n .. s_0` (at positions `2n+2 .. 3n+2`) are predicted at
positions `2n+1 .. 3n+1` (the `=` and every answer digit but the last); only those carry loss. The model's outputs
are the ten digits (`d_vocab_out = 10`).

Arrays of digits in this module are indexed by place value, least significant first: `a_digits[..., i]` is `a_i`,
and answer digit `i` (metric names `digit{i}_...`, label column `i`) is `s_i`.

Subtask labels (the paper's names): for answer digit `i`,

- `BA` base add: `s_i` depends on `a_i + b_i mod 10` (every digit but the leading `s_n`);
- `MC` make carry: `a_i + b_i >= 10`;
- `MS` make sum 9: `a_i + b_i == 9` (passes a carry arriving from below on to `i + 1`);
- `UC` use carry: a carry comes in directly from position `i - 1` (`MC` at `i - 1`);
- `US` use sum-9 cascade: a carry comes in through one or more sum-9 digits (`MS` at `i - 1`, carried into).

The carry into digit `i` is exactly `UC | US`, so `s_i = (a_i + b_i + (UC | US)) mod 10`.

Questions are sampled fresh every step. An `enriched` fraction of each batch is built digit by digit to
over-represent carries and sum-9 cascades (natural rates: `MS` 10%, a cascade into a given digit about 5%).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from toymi.tasks.base import Batch, Task, masked_accuracy, masked_cross_entropy, token_nll
from toymi.tasks.render import as_tokens, one_sequence
from toymi.validate import integer, number, problems, require

_COUNT = integer(1, says="an integer >= 1")  # the wording its errors have always had
_CHECKS = {"n_digits": _COUNT, "batch_size": _COUNT, "eval_size": _COUNT,
           "enriched": number(0, 1, says="a fraction in [0, 1]"), "data_seed": integer()}

PLUS, EQUALS = 10, 11
SYMBOLS = "0123456789+="  # token id -> character
SUBTASKS = ("BA", "MC", "MS", "UC", "US")
EVAL_STREAM = 0xADD

# Enriched digits: each digit pair is a sum-9 pair, a carry-making pair or a uniformly random pair with these
# probabilities. With random pairs also making carries 45% of the time, a carry arrives through a sum-9 digit at a
# given digit with probability ~0.2 (vs ~0.05 naturally) and longer cascades become common enough to learn.
ENRICH_SUM9, ENRICH_CARRY = 0.5, 0.3
CARRY_PAIRS = np.array([(a, b) for a in range(10) for b in range(10) if a + b >= 10], np.int32)  # [45, 2]


def sequence_tokens(a_digits: Int[Array, "*b n"], b_digits: Int[Array, "*b n"]) -> Int[Array, "*b 3n+3"]:
    """The full token sequence `a + b = s` for digit arrays given least significant first.

    **Arguments:**

    - `a_digits`, `b_digits`: `[..., n]` digits 0-9, `[..., i]` the digit of place value `10^i`.

    **Returns:** `[..., 3n + 3]` tokens, every number written most significant digit first.
    """
    a_digits, b_digits = jnp.asarray(a_digits, jnp.int32), jnp.asarray(b_digits, jnp.int32)
    total = a_digits + b_digits
    carry = jnp.zeros(total.shape[:-1], jnp.int32)
    answer = []
    for i in range(total.shape[-1]):  # n is small and static: an unrolled ripple-carry adder
        column = total[..., i] + carry
        answer.append(column % 10)
        carry = column // 10
    answer.append(carry)
    answer = jnp.stack(answer, axis=-1)  # [..., n + 1], least significant first
    shape = total.shape[:-1]
    return jnp.concatenate([
        a_digits[..., ::-1], jnp.full((*shape, 1), PLUS, jnp.int32),
        b_digits[..., ::-1], jnp.full((*shape, 1), EQUALS, jnp.int32),
        answer[..., ::-1],
    ], axis=-1)


def question_digits(tokens: Int[Array, "*b 3n+3"]) -> tuple[Int[Array, "*b n"], Int[Array, "*b n"]]:
    """`(a_digits, b_digits)`, least significant first, read back from token sequences."""
    n = (tokens.shape[-1] - 3) // 3
    return tokens[..., n - 1 :: -1], tokens[..., 2 * n : n : -1]


def digits_of(x: int, n_digits: int) -> np.ndarray:
    """The `n_digits` decimal digits of `x`, least significant first (for building questions by hand)."""
    if not 0 <= x < 10**n_digits:
        raise ValueError(f"{x} does not have at most {n_digits} digits")
    return np.array([(x // 10**i) % 10 for i in range(n_digits)], np.int32)


def subtask_labels(a_digits: Int[Array, "*b n"], b_digits: Int[Array, "*b n"]) -> dict[str, Bool[Array, "*b n+1"]]:
    """Which subtasks each answer digit needs (module docstring), for digit arrays given least significant first.

    **Arguments:**

    - `a_digits`, `b_digits`: `[..., n]` digits, `[..., i]` of place value `10^i`.

    **Returns:** `{"BA", "MC", "MS", "UC", "US"}` → `[..., n + 1]` booleans, column `i` for answer digit `s_i`.
    """
    total = jnp.asarray(a_digits) + jnp.asarray(b_digits)
    shape, n = total.shape[:-1], total.shape[-1]
    no = jnp.zeros((*shape, 1), bool)
    mc = jnp.concatenate([total >= 10, no], axis=-1)  # s_n has no digits of its own
    ms = jnp.concatenate([total == 9, no], axis=-1)
    carry_in = [no[..., 0]]
    for i in range(1, n + 1):  # a carry reaches i if i-1 makes one or passes one on
        carry_in.append(mc[..., i - 1] | (ms[..., i - 1] & carry_in[i - 1]))
    carry_in = jnp.stack(carry_in, axis=-1)
    shift = lambda x: jnp.concatenate([no, x[..., :-1]], axis=-1)  # noqa: E731  column i-1 moved to i
    return {
        "BA": jnp.broadcast_to(jnp.arange(n + 1) < n, (*shape, n + 1)),
        "MC": mc,
        "MS": ms,
        "UC": shift(mc),
        "US": shift(ms & carry_in),
    }


def random_digits(key: PRNGKeyArray, shape: tuple[int, ...]) -> tuple[Int[Array, "..."], Int[Array, "..."]]:
    """Uniform digit pairs: every question equally likely."""
    ka, kb = jax.random.split(key)
    return jax.random.randint(ka, shape, 0, 10), jax.random.randint(kb, shape, 0, 10)


def enriched_digits(key: PRNGKeyArray, shape: tuple[int, ...]) -> tuple[Int[Array, "..."], Int[Array, "..."]]:
    """Digit pairs that are sum-9, carry-making or uniform with probabilities `ENRICH_SUM9`, `ENRICH_CARRY`, rest."""
    k_kind, k_nine, k_carry, k_rand = jax.random.split(key, 4)
    u = jax.random.uniform(k_kind, shape)
    nine_a = jax.random.randint(k_nine, shape, 0, 10)
    carry = jnp.asarray(CARRY_PAIRS)[jax.random.randint(k_carry, shape, 0, len(CARRY_PAIRS))]
    rand_a, rand_b = random_digits(k_rand, shape)
    is_nine, is_carry = u < ENRICH_SUM9, (u >= ENRICH_SUM9) & (u < ENRICH_SUM9 + ENRICH_CARRY)
    a = jnp.where(is_nine, nine_a, jnp.where(is_carry, carry[..., 0], rand_a))
    b = jnp.where(is_nine, 9 - nine_a, jnp.where(is_carry, carry[..., 1], rand_b))
    return a, b


def loss_positions(n_digits: int) -> tuple[int, ...]:
    """The positions scored: `=` .. s_1, predicting s_n .. s_0."""
    return tuple(range(2 * n_digits + 1, 3 * n_digits + 2))


def question_batch(a_digits: Int[Array, "b n"], b_digits: Int[Array, "b n"]) -> Batch:
    """The questions `a + b`, their next-token targets and the answer positions' loss mask."""
    tokens = sequence_tokens(a_digits, b_digits)
    targets = jnp.concatenate([tokens[:, 1:], jnp.zeros_like(tokens[:, :1])], axis=1)  # the last predicts nothing
    mask = np.zeros(tokens.shape[1], np.float32)
    mask[list(loss_positions(a_digits.shape[-1]))] = 1.0
    return Batch(tokens, targets, jnp.broadcast_to(jnp.asarray(mask), tokens.shape))


@eqx.filter_jit  # one compiled program per eval set a task builds at construction (eagerly, dozens of one-op programs)
def questions(key: PRNGKeyArray, n: int, n_digits: int, enriched: bool) -> Batch:
    """`n` questions of `n_digits`-digit operands, uniform or all enriched."""
    return question_batch(*(enriched_digits if enriched else random_digits)(key, (n, n_digits)))


class Addition(Task):
    """`n_digits`-digit addition, questions sampled on device (module docstring for the format and labels).

    **Arguments:**

    - `n_digits`: digits per operand (the answer has one more), >= 1.
    - `batch_size`: questions per training step.
    - `enriched`: fraction of every training batch built to over-represent carries and sum-9 cascades, in [0, 1].
    - `eval_size`: questions in each fixed eval set (`test`: uniform; `cascade`: all enriched).
    - `data_seed`: seed of the eval sets (training questions come from the run's seed).
    """

    known_circuit = "addition"
    n_digits: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    enriched: float = eqx.field(static=True)
    eval_size: int = eqx.field(static=True)
    data_seed: int = eqx.field(static=True)
    test: Batch
    cascade: Batch

    def __init__(self, n_digits: int = 5, batch_size: int = 64, enriched: float = 0.0, eval_size: int = 1024,
                 data_seed: int = 0):
        require("addition task", problems({"n_digits": n_digits, "batch_size": batch_size, "eval_size": eval_size,
                                           "enriched": enriched, "data_seed": data_seed}, _CHECKS))
        self.n_digits, self.batch_size, self.enriched = n_digits, batch_size, float(enriched)
        self.eval_size, self.data_seed = eval_size, data_seed
        # A stream of its own, so an eval set never equals a training batch drawn from PRNGKey(seed) by chance.
        k_test, k_cascade = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(data_seed), EVAL_STREAM))
        self.test = questions(k_test, eval_size, n_digits, enriched=False)
        self.cascade = questions(k_cascade, eval_size, n_digits, enriched=True)

    @property
    def n_enriched(self) -> int:
        """Enriched questions per training batch (static)."""
        return round(self.enriched * self.batch_size)

    def train_batch(self, key: PRNGKeyArray) -> Batch:
        k_rand, k_enr = jax.random.split(key)
        a, b = random_digits(k_rand, (self.batch_size - self.n_enriched, self.n_digits))
        if self.n_enriched:
            ea, eb = enriched_digits(k_enr, (self.n_enriched, self.n_digits))
            a, b = jnp.concatenate([a, ea]), jnp.concatenate([b, eb])
        return question_batch(a, b)

    def eval_batches(self) -> dict[str, Batch]:
        return {"test": self.test, "cascade": self.cascade}

    def loss_positions(self) -> tuple[int, ...]:
        return loss_positions(self.n_digits)

    def model_dims(self) -> dict[str, int]:
        return {"d_vocab": 12, "d_vocab_out": 10, "n_ctx": 3 * self.n_digits + 3}

    def render_tokens(self, tokens) -> list[str]:
        """Digits, `+` and `=`, one character per token."""
        return [SYMBOLS[t] for t in one_sequence(tokens, len(SYMBOLS), "addition")]

    def to_string(self, tokens) -> str:
        """`12345+67890=080235`: the question and as much of the answer as the tokens hold."""
        return "".join(self.render_tokens(tokens))

    def from_string(self, text: str) -> Array:
        """Tokens of a prefix of `a+b=s` with `n_digits`-digit operands (spaces ignored), e.g. `12345+67890=`."""
        n, chars = self.n_digits, text.replace(" ", "")
        form = f"{'d' * n}+{'d' * n}={'d' * (n + 1)}"
        if not chars or len(chars) > len(form):
            raise ValueError(f"addition: {text!r} is not a prefix of {form!r} (n_digits={n})")
        for i, (c, want) in enumerate(zip(chars, form)):
            if (c not in "0123456789") if want == "d" else c != want:
                what = "a digit" if want == "d" else repr(want)
                raise ValueError(f"addition: expected {what} at character {i} of {text!r}, a prefix of {form!r}")
        return as_tokens([SYMBOLS.index(c) for c in chars])

    def generation_limit(self, prompt) -> int:
        """The answer digits: the prompt must hold the whole question `a+b=`."""
        prompt_len = prompt.shape[-1]
        if prompt_len < 2 * self.n_digits + 2:
            raise ValueError(f"addition: generate writes the answer, so the prompt must hold the question a+b= "
                             f"({2 * self.n_digits + 2} tokens), got {prompt_len}")
        return super().generation_limit(prompt)

    def metrics(self, logits: Float[Array, "batch n+1 vocab"], batch: Batch) -> dict[str, Array]:
        """Loss and digit accuracy, whole-answer accuracy, and loss and accuracy of every answer digit."""
        nll = token_nll(logits.astype(jnp.float32), batch.targets)  # [batch, n+1]
        correct = logits.argmax(-1) == batch.targets
        out = {"loss": masked_cross_entropy(logits, batch), "accuracy": masked_accuracy(logits, batch),
               "answer_accuracy": correct.all(axis=1).mean()}
        n = self.n_digits
        for i in range(n + 1):  # column n - i predicts s_i (the answer is written most significant first)
            out[f"digit{i}_loss"] = nll[:, n - i].mean()
            out[f"digit{i}_accuracy"] = correct[:, n - i].mean()
        return out

    def facts(self) -> dict:
        """Subtask labels of the eval sets, the labelling function, and where each answer digit is predicted.

        **Returns:** a dict with

        - `"labels"`: `{set name: {subtask: [batch, n + 1] bool}}` for the eval sets (column `i` is `s_i`);
        - `"subtask_labels"`: `subtask_labels(a_digits, b_digits)`, for any questions;
        - `"question_digits"`: `question_digits(tokens)` → `(a_digits, b_digits)`, least significant first;
        - `"predicted_at"`: `[n + 1]` ints, the position whose output is answer digit `s_i`.
        """
        n = self.n_digits
        return {
            "labels": {name: subtask_labels(*question_digits(b.tokens)) for name, b in self.eval_batches().items()},
            "subtask_labels": subtask_labels,
            "question_digits": question_digits,
            "predicted_at": np.array([3 * n + 1 - i for i in range(n + 1)]),
        }
