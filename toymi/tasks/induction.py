"""Induction on random tokens: sequences whose second half can only be predicted by copying from earlier in context.

Three modes, each sampled fresh on device every step, with `body = subseq_len * n_repeats` random tokens from
`[0, vocab)`, optionally after a BOS token (id `vocab`):

- `"repeat"` (Nanda's recipe): `subseq_len` distinct random tokens, repeated `n_repeats` times. The period is
  fixed, so a head attending a fixed `subseq_len - 1` positions back solves it as well as an induction head does.
- `"random_period"`: the same with a period drawn per sequence, uniformly in `[min_subseq_len, subseq_len]`: a
  chunk of that many distinct tokens repeated until the body is full. No fixed offset copies every sequence.
- `"random_offsets"`: `body` distinct random tokens in which one chunk of `subseq_len` tokens is copied to a random
  later, non-overlapping offset. Only content-based attention (an induction head) finds the copy.

Tokens are distinct apart from the copies, so every repeated token has exactly one earlier occurrence and the
induction ground truth is unambiguous.

Position `i` predicts token `i + 1`. Every position but the last has a target; `loss_on` picks which are trained:
`"all"` (plain next-token prediction) or `"repeated"` (only the positions an induction head can predict: the current
token occurred before and the token after that occurrence is the target). Metrics split the loss into
`repeated_loss` (those positions) and `first_loss` (positions whose target token has not occurred yet), and give the
in-context-learning score `icl_score` = loss at the last position minus loss at an early position,
`(min_subseq_len - 1) // 2`, which is a first occurrence in every mode (Olsson et al. use tokens 500 and 50 of
natural text). In `"random_offsets"` mode the last position is part of a copy in only some sequences, so the score is an average
over sequences that do and do not end in a copy.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from toymi.tasks.base import Batch, Task, masked_accuracy, masked_cross_entropy, token_nll
from toymi.tasks.render import as_tokens, one_sequence
from toymi.validate import boolean, integer, one_of, problems, require

BOS_TEXT = "<bos>"
MODES = ("repeat", "random_period", "random_offsets")
LOSS_ON = ("all", "repeated")
_COUNT = integer(1, says="an integer >= 1")  # the wording its errors have always had
_CHECKS = {"vocab": integer(2), "subseq_len": integer(2), "n_repeats": integer(2), "batch_size": _COUNT,
           "eval_size": _COUNT, "mode": one_of(MODES), "loss_on": one_of(LOSS_ON), "bos": boolean,
           "data_seed": integer(), "min_subseq_len": integer(2)}
EVAL_STREAM = 0x1D


def induction_targets(tokens: Int[Array, "*b pos"]) -> Int[Array, "*b pos"]:
    """For every position, the position an induction head should attend to, or -1.

    That is the position just after the most recent earlier occurrence of the current token: the token there is
    what came next last time, so copying it predicts the next token.

    **Arguments:**

    - `tokens`: `[..., pos]` token ids.

    **Returns:** `[..., pos]` ints in `[1, pos)` or -1 where the current token has not occurred before.
    """
    pos = tokens.shape[-1]
    same = tokens[..., :, None] == tokens[..., None, :]  # [..., query, key]
    earlier = np.arange(pos)[None, :] < np.arange(pos)[:, None]
    last = jnp.where(same & earlier, np.arange(pos), -1).max(axis=-1)
    return jnp.where(last >= 0, last + 1, -1)


def previous_token_targets(pos: int) -> Int[Array, " pos"]:
    """For every position, the position a previous-token head attends to (`i - 1`; -1 at position 0)."""
    return jnp.arange(pos) - 1


def repeated_positions(tokens: Int[Array, "*b pos"]) -> Bool[Array, "*b pos"]:
    """Positions whose next token an induction head predicts: the token after the previous occurrence is the target.

    The last position has no target and is never included.
    """
    source = induction_targets(tokens)
    copied = jnp.take_along_axis(tokens, jnp.maximum(source, 0), axis=-1)
    next_token = jnp.concatenate([tokens[..., 1:], jnp.full_like(tokens[..., :1], -1)], axis=-1)
    return (source >= 0) & (copied == next_token)


def first_occurrence_positions(tokens: Int[Array, "*b pos"]) -> Bool[Array, "*b pos"]:
    """Positions whose target (the next token) has not occurred yet; the last position is never included."""
    pos = tokens.shape[-1]
    same = tokens[..., 1:, None] == tokens[..., None, :]  # [..., target position - 1, key]
    at_or_before = np.arange(pos)[None, :] <= np.arange(pos - 1)[:, None]
    first = ~(same & at_or_before).any(axis=-1)
    return jnp.concatenate([first, jnp.zeros_like(first[..., :1])], axis=-1)


def distinct_tokens(key: PRNGKeyArray, n_seqs: int, length: int, vocab: int) -> Int[Array, "n_seqs length"]:
    """`n_seqs` rows of `length` distinct tokens from `[0, vocab)`, uniformly random sets in random order."""
    return jax.lax.top_k(jax.random.uniform(key, (n_seqs, vocab)), length)[1].astype(jnp.int32)


def repeat_body(key: PRNGKeyArray, n_seqs: int, subseq_len: int, n_repeats: int, vocab: int) -> Int[Array, "n body"]:
    """`"repeat"` mode: a chunk of distinct random tokens, `n_repeats` times in a row."""
    return jnp.tile(distinct_tokens(key, n_seqs, subseq_len, vocab), (1, n_repeats))


def random_period_body(key: PRNGKeyArray, n_seqs: int, min_len: int, max_len: int, length: int, vocab: int
                       ) -> Int[Array, "n body"]:
    """`"random_period"` mode: per sequence a period uniform in `[min_len, max_len]` and a chunk of that many
    distinct random tokens, repeated until `length` tokens are filled (the last repeat cut short)."""
    k_tokens, k_period = jax.random.split(key)
    chunk = distinct_tokens(k_tokens, n_seqs, max_len, vocab)
    period = jax.random.randint(k_period, (n_seqs, 1), min_len, max_len + 1)
    return jnp.take_along_axis(chunk, jnp.arange(length)[None, :] % period, axis=-1)


def offset_copy_body(key: PRNGKeyArray, n_seqs: int, subseq_len: int, length: int, vocab: int) -> Int[Array, "n body"]:
    """`"random_offsets"` mode: distinct random tokens with one `subseq_len` chunk copied to a later offset.

    The source starts uniformly in `[0, length - 2 subseq_len]`, the copy uniformly between the end of the source
    and the end of the sequence, so the two never overlap.
    """
    k_tokens, k_src, k_dst = jax.random.split(key, 3)
    tokens = distinct_tokens(k_tokens, n_seqs, length, vocab)
    src = jax.random.randint(k_src, (n_seqs, 1), 0, length - 2 * subseq_len + 1)
    dst = src + subseq_len + jax.random.randint(k_dst, (n_seqs, 1), 0, length - 2 * subseq_len - src + 1)
    idx = jnp.arange(length)
    in_copy = (idx >= dst) & (idx < dst + subseq_len)
    return jnp.take_along_axis(tokens, jnp.where(in_copy, idx - dst + src, idx), axis=-1)


# Compiled, one program per shape and mode: the eval sets a task draws at construction were dozens of eager one-op
# programs (2.4 s for a new task at XLA's defaults). Training traces it as part of its own program.
@eqx.filter_jit
def sequences(key: PRNGKeyArray, n_seqs: int, mode: str, subseq_len: int, n_repeats: int, min_subseq_len: int,
              vocab: int, bos: bool, loss_on: str) -> Batch:
    """`n_seqs` sequences of `mode` with their next-token targets and loss mask (`Induction`'s settings)."""
    body_len = subseq_len * n_repeats
    if mode == "repeat":
        body = repeat_body(key, n_seqs, subseq_len, n_repeats, vocab)
    elif mode == "random_period":
        body = random_period_body(key, n_seqs, min_subseq_len, subseq_len, body_len, vocab)
    else:
        body = offset_copy_body(key, n_seqs, subseq_len, body_len, vocab)
    tokens = jnp.concatenate([jnp.full((n_seqs, 1), vocab, jnp.int32), body], axis=1) if bos else body
    targets = jnp.concatenate([tokens[:, 1:], jnp.zeros_like(tokens[:, :1])], axis=1)
    if loss_on == "repeated":
        mask = repeated_positions(tokens).astype(jnp.float32)
    else:
        seq_len = tokens.shape[1]
        mask = jnp.broadcast_to(jnp.asarray(np.arange(seq_len) < seq_len - 1, jnp.float32), tokens.shape)
    return Batch(tokens, targets, mask)


class Induction(Task):
    """Repeated random tokens (module docstring for the modes, scoring and metrics).

    **Arguments:**

    - `vocab`: random tokens are drawn from `[0, vocab)`; the model outputs `vocab` classes.
    - `subseq_len`: length of the repeated chunk (of the copied chunk in `"random_offsets"` mode).
    - `n_repeats`: sequences have `subseq_len * n_repeats` random tokens (in `"repeat"` mode: the chunk that many
      times), >= 2.
    - `mode`: `"repeat"`, `"random_period"` or `"random_offsets"`.
    - `min_subseq_len`: `"random_period"` mode's shortest period (default, and in the other modes: `subseq_len`).
    - `bos`: start every sequence with a BOS token (id `vocab`, so the model reads `vocab + 1` tokens).
    - `loss_on`: `"all"` positions with a target, or only the `"repeated"` ones an induction head can predict.
    - `batch_size`: sequences per training step.
    - `eval_size`: sequences in each fixed eval set (`test`: the training distribution; in the other modes also
      `offsets`, the `"random_offsets"` distribution, which a fixed-offset head cannot solve).
    - `data_seed`: seed of the eval sets.
    """

    known_circuit = "induction"
    vocab: int = eqx.field(static=True)
    subseq_len: int = eqx.field(static=True)
    n_repeats: int = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    bos: bool = eqx.field(static=True)
    loss_on: str = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    eval_size: int = eqx.field(static=True)
    data_seed: int = eqx.field(static=True)
    min_subseq_len: int = eqx.field(static=True)
    evals: dict[str, Batch]

    def __init__(self, vocab: int = 128, subseq_len: int = 16, n_repeats: int = 3, mode: str = "repeat",
                 bos: bool = True, loss_on: str = "all", batch_size: int = 128, eval_size: int = 512,
                 data_seed: int = 0, min_subseq_len: int | None = None):
        min_subseq_len = subseq_len if min_subseq_len is None else min_subseq_len
        values = {"vocab": vocab, "subseq_len": subseq_len, "n_repeats": n_repeats, "batch_size": batch_size,
                  "eval_size": eval_size, "mode": mode, "loss_on": loss_on, "bos": bos, "data_seed": data_seed,
                  "min_subseq_len": min_subseq_len}
        found = problems(values, _CHECKS)
        if not found and min_subseq_len != subseq_len and mode != "random_period":
            found.append(f"min_subseq_len applies to mode 'random_period' only (mode is {mode!r})")
        if not found and min_subseq_len > subseq_len:
            found.append(f"min_subseq_len ({min_subseq_len}) must be at most subseq_len ({subseq_len})")
        if not found:
            # Tokens are distinct apart from the copies (unambiguous ground truth), so they must fit in the vocab.
            # ... and the other modes' `offsets` eval set is drawn in "random_offsets" mode
            distinct = subseq_len * n_repeats
            if distinct > vocab:
                found.append(f"mode {mode!r} needs {distinct} distinct tokens but vocab is {vocab}"
                             + ("" if mode == "random_offsets" else " (its 'offsets' eval set has subseq_len * "
                                "n_repeats tokens, all distinct apart from one copy)"))
        require("induction task", found)
        self.vocab, self.subseq_len, self.n_repeats, self.mode = vocab, subseq_len, n_repeats, mode
        self.bos, self.loss_on, self.batch_size, self.eval_size, self.data_seed = (
            bos, loss_on, batch_size, eval_size, data_seed)
        self.min_subseq_len = min_subseq_len
        k_test, k_offsets = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(data_seed), EVAL_STREAM))
        self.evals = {"test": self._sample(k_test, eval_size, mode)}
        if mode != "random_offsets":  # which a fixed-offset head cannot solve
            self.evals["offsets"] = self._sample(k_offsets, eval_size, "random_offsets")

    @property
    def seq_len(self) -> int:
        return self.subseq_len * self.n_repeats + self.bos

    def _sample(self, key: PRNGKeyArray, n_seqs: int, mode: str) -> Batch:
        return sequences(key, n_seqs, mode, self.subseq_len, self.n_repeats, self.min_subseq_len, self.vocab,
                         self.bos, self.loss_on)

    def sample(self, key: PRNGKeyArray, n: int) -> Batch:
        """`n` fresh sequences of the training distribution (`mode`)."""
        return self._sample(key, n, self.mode)

    def train_batch(self, key: PRNGKeyArray) -> Batch:
        return self._sample(key, self.batch_size, self.mode)

    def eval_batches(self) -> dict[str, Batch]:
        return self.evals

    def loss_positions(self) -> tuple[int, ...]:
        return tuple(range(self.seq_len - 1))  # the last position predicts nothing

    def model_dims(self) -> dict[str, int]:
        return {"d_vocab": self.vocab + self.bos, "d_vocab_out": self.vocab, "n_ctx": self.seq_len}

    def metrics(self, logits: Float[Array, "batch pos vocab"], batch: Batch) -> dict[str, Array]:
        """The trained loss and accuracy, loss and accuracy on repeated and first-occurrence tokens, ICL score."""
        scored = logits.shape[1]  # seq_len - 1: the loss positions
        nll = token_nll(logits.astype(jnp.float32), batch.targets)  # [batch, pos]
        correct = (logits.argmax(-1) == batch.targets).astype(jnp.float32)
        repeated = repeated_positions(batch.tokens)[:, :scored].astype(jnp.float32)
        first = first_occurrence_positions(batch.tokens)[:, :scored].astype(jnp.float32)
        mean_over = lambda x, m: (x * m).sum() / jnp.maximum(m.sum(), 1.0)  # noqa: E731
        return {
            "loss": masked_cross_entropy(logits, batch),
            "accuracy": masked_accuracy(logits, batch),
            "repeated_loss": mean_over(nll, repeated),
            "repeated_accuracy": mean_over(correct, repeated),
            "first_loss": mean_over(nll, first),
            "icl_score": nll[:, -1].mean() - nll[:, (self.min_subseq_len - 1) // 2].mean(),
        }

    def render_tokens(self, tokens) -> list[str]:
        """Random tokens as their ids (`17`), the BOS token as `<bos>`."""
        ids = one_sequence(tokens, self.vocab + self.bos, "induction")
        return [BOS_TEXT if t == self.vocab else str(t) for t in ids]

    def to_string(self, tokens) -> str:
        """`<bos> 17 3 99 17 3 99`."""
        return " ".join(self.render_tokens(tokens))

    def from_string(self, text: str) -> Array:
        """Tokens of `<bos> 17 3 ...` (the `<bos>` first when the task has one, and nowhere else)."""
        words = text.split()
        if not 0 < len(words) <= self.seq_len:
            raise ValueError(f"induction: {text!r} has {len(words)} tokens; sequences have 1 to {self.seq_len}")
        if self.bos and words[0] != BOS_TEXT:
            raise ValueError(f"induction: this task's sequences start with {BOS_TEXT}, got {text!r}")
        ids = []
        for i, word in enumerate(words):
            if self.bos and i == 0:
                ids.append(self.vocab)
            elif not word.isdigit() or int(word) >= self.vocab:
                raise ValueError(f"induction: {word!r} (word {i} of {text!r}) is not a token in [0, {self.vocab})")
            else:
                ids.append(int(word))
        return as_tokens(ids)

    def facts(self) -> dict:
        """Where induction and previous-token heads should attend, for the eval sets and as functions.

        **Returns:** a dict with

        - `"attention_targets"`: `{set name: {"induction": [batch, pos], "previous_token": [batch, pos]}}`, the
          position each query should attend to, -1 where there is none;
        - `"induction_targets"`: `induction_targets(tokens)`, for any sequences;
        - `"previous_token_targets"`: `previous_token_targets(pos)`.
        """
        return {
            "attention_targets": {
                name: {"induction": induction_targets(b.tokens),
                       "previous_token": jnp.broadcast_to(previous_token_targets(self.seq_len), b.tokens.shape)}
                for name, b in self.evals.items()
            },
            "induction_targets": induction_targets,
            "previous_token_targets": previous_token_targets,
        }
