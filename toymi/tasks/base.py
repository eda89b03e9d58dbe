"""The Task protocol every synthetic task implements, and the masked loss they share.

A task is an Equinox module: its datasets are array fields (so they live on device and enter compiled code as
arguments, not baked-in constants) and its settings are static fields. The training engine only ever calls:

- `train_batch(key)`: the batch for one optimiser step — the full training set for full-batch tasks, or a fresh
  sample drawn on device from `key` for sampling tasks;
- `sample(key, n)`: `n` fresh examples of the task's distribution, drawn on device (static `n`), of the same batch
  type as `train_batch` (`Batch` for sequence tasks, `FeatureBatch` for feature-vector tasks);
- `model_inputs(batch, kind)`: what a model of `kind` reads for `batch` (default: the batch's `inputs`);
- `eval_batches()`: the fixed named sets evaluated every N steps (e.g. `{"train": ..., "test": ...}`);
- `loss(model, batch)`: the training objective (default: masked cross-entropy at the scored positions);
- `evaluate(model, batch)`: scalars to log for one eval set (default: `metrics` of the scored logits);
- `metrics(logits, batch)`: at least `loss` and `accuracy` for sequence tasks;
- `loss_positions()`: the positions that carry loss, when fixed (the model then computes logits only there, and
  `metrics` sees logits and a batch restricted to them), or None;
- `model_dims()`: what the model must have (`d_vocab`, `d_vocab_out`, `n_ctx` for a transformer; the spec fills
  them in and rejects a conflicting value; `n_ctx` may be larger);
- `model_kinds`: the model kinds (`toymi.model.registry`) the task trains, the first being the default;
- `sweep_summary`: what `toymi sweep` summarises and draws by default: `(metric, threshold)`, the steps until
  `metric` is below `threshold` (a phase diagram; Nanda et al.'s "grokked" is test loss < 0.1), or `(metric, None)`,
  its final value, for tasks whose loss scale the swept settings change (TMS, compressed computation);
- `output_comparison(kind)`: how a second model's output is compared with a `kind` model's on the task (SPD's
  reconstruction): the distance its training loss implies and the positions compared;
- `facts()`: what is known about the task before training (a dict), which dissection is scored against
  (a decomposition of a trained model is scored against a `toymi.decompose.GroundTruth` instead);
- `stack(tasks)` (classmethod): one task for a whole ensemble, every array with a leading member axis;
- `render_tokens(tokens)`: one readable string per token id (per feature, for a feature vector);
  `to_string(tokens)` / `from_string(text)`: a whole input as text and back (a bad string is a one-line error);
- `known_circuit`: the circuit the task states by construction, by name (`"induction"`, `"and_gates"`,
  `"addition"`; None for the rest): `toymi.circuits`, its reports and its pages choose a task's targets, studies and
  attribution pages by this name, not by the task's class;
- `predicts_next_token`: whether the model's output is a next token (what `toymi.show` and `toymi.generate` read);
  then `shown_positions(tokens)`, `generation_limit(n)` and `generation_step(...)`: where predictions are scored
  (never at `padding_token`, which fills a sequence after its end), and the task's stopping rule for generation.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from toymi.trees import stack


class Batch(eqx.Module):
    """Sequences, next-token targets and which positions carry loss."""

    tokens: Int[Array, "batch pos"]
    targets: Int[Array, "batch pos"]
    loss_mask: Float[Array, "batch pos"]  # 1.0 where a position's prediction is scored

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def inputs(self) -> Int[Array, "batch pos"]:
        """What a model reads: the tokens."""
        return self.tokens

    def at_positions(self, positions: tuple[int, ...] | None) -> "Batch":
        """Targets and mask restricted to `positions` (tokens kept whole: the model reads all of them)."""
        if positions is None:
            return self
        idx = np.asarray(positions)
        return Batch(self.tokens, self.targets[:, idx], self.loss_mask[:, idx])


def token_nll(logits: Float[Array, "*batch vocab"], targets: Int[Array, "*batch"]) -> Float[Array, "*batch"]:
    """Cross-entropy of each target under its logits (in the logits' own dtype)."""
    logprobs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logprobs, targets[..., None], axis=-1)[..., 0]


def exact_token_nll(logits: Float[Array, "*batch vocab"], targets: Int[Array, "*batch"]) -> Float[Array, "*batch"]:
    """Cross-entropy of each target, exact in float32 however confident the prediction.

    `log_softmax` computes the loss as `logsumexp(l) - l_y`, a difference of two numbers near each other when the
    prediction is confident, so float32 can only return multiples of ~1.2e-7 (Nanda et al.'s code casts to float64
    for this). Written as `softplus(logsumexp_{j != y}(l_j - l_y))` = `log1p(sum_{j != y} exp(l_j - l_y))`, the
    loss keeps its relative precision down to float32's smallest numbers, and is stable for any logits.
    """
    logits = logits.astype(jnp.float32)
    margins = logits - jnp.take_along_axis(logits, targets[..., None], axis=-1)  # l_j - l_y
    is_target = jnp.arange(logits.shape[-1]) == targets[..., None]
    wrong = jax.nn.logsumexp(jnp.where(is_target, -jnp.inf, margins), axis=-1)
    return jax.nn.softplus(wrong)


def masked_cross_entropy(logits: Float[Array, "batch pos vocab"], batch: Batch, exact: bool = False
                         ) -> Float[Array, ""]:
    """Mean cross-entropy over the positions `batch.loss_mask` selects (`exact`: see `exact_token_nll`)."""
    nll = (exact_token_nll if exact else token_nll)(logits.astype(jnp.float32), batch.targets)
    return (nll * batch.loss_mask).sum() / batch.loss_mask.sum()


def masked_accuracy(logits: Float[Array, "batch pos vocab"], batch: Batch) -> Float[Array, ""]:
    """Fraction of scored positions whose argmax is the target."""
    correct = (logits.argmax(-1) == batch.targets).astype(jnp.float32)
    return (correct * batch.loss_mask).sum() / batch.loss_mask.sum()


class Task(eqx.Module):
    """Base class of every task; see the module docstring for the protocol."""

    model_kinds: ClassVar[tuple[str, ...]] = ("transformer",)
    sweep_summary: ClassVar[tuple[str, float | None]] = ("test_loss", 0.1)
    # False for feature-vector tasks, whose models output values rather than a distribution over next tokens.
    predicts_next_token: ClassVar[bool] = True
    # What the task states of its circuit by construction, by name (module docstring): "induction" (a previous-token
    # head, then an induction head), "and_gates" (each gate reads its two inputs), "addition" (each answer digit reads
    # its two operand digits), or None.
    known_circuit: ClassVar[str | None] = None
    # The token that fills a sequence after its end (chess: PAD), if any: never predicted, never a prediction's target.
    padding_token: ClassVar[int | None] = None

    @abc.abstractmethod
    def train_batch(self, key: PRNGKeyArray) -> Batch: ...

    @abc.abstractmethod
    def eval_batches(self) -> dict[str, Batch]: ...

    def sample(self, key: PRNGKeyArray, n: int):
        """`n` fresh examples of the task's distribution (a batch of `train_batch`'s type), drawn on device.

        Default: `train_batch` under `vmap` over enough keys, truncated to `n`. Sampling tasks override it to draw
        exactly `n`; full-batch tasks to draw from the distribution the model computes on.
        """
        size = len(self.train_batch(key))
        batches = jax.vmap(self.train_batch)(jax.random.split(key, -(-n // size)))
        return jax.tree.map(lambda leaf: leaf.reshape(-1, *leaf.shape[2:])[:n], batches)

    def model_inputs(self, batch, kind: str) -> Array:
        """What a model of `kind` (`toymi.model.registry`) reads for `batch`: the batch's `inputs` unless the task
        encodes them differently for that kind."""
        del kind
        return batch.inputs

    @abc.abstractmethod
    def model_dims(self) -> dict[str, int]: ...

    def model_dims_for(self, kind: str) -> dict[str, int]:
        """`model_dims()` for a model of `kind`; tasks that train several kinds override this."""
        return self.model_dims()

    @classmethod
    def dims_from_settings(cls, kind: str, **settings) -> dict[str, int]:
        """Validate `settings` and return the model dims for `kind` without keeping the task. Specs call this to
        check themselves; a task whose construction is expensive (it generates or loads data) overrides it to check
        its settings without building anything."""
        return cls(**settings).model_dims_for(kind)

    @abc.abstractmethod
    def facts(self):
        """What is known about the task before any model is trained (its circuit, feature directions, target), as
        a dict. Not a `toymi.decompose.GroundTruth`, which is what a decomposition of one trained model's
        activations is scored against (`toymi.decompose.truths`)."""

    @classmethod
    def stack(cls, tasks: Sequence["Task"]) -> "Task":
        """One task whose every array has a leading member axis, for training an ensemble as one vmapped program.

        Members may differ in whatever lives in arrays (test data drawn from another `data_seed`, a density held as
        an array); settings that fix shapes or code paths are static fields and must agree. A task whose members can
        differ in more (modular arithmetic's train fraction, as masks) overrides this.
        """
        differing = [f.name for f in dataclasses.fields(tasks[0]) if f.metadata.get("static")
                     and any(getattr(t, f.name) != getattr(tasks[0], f.name) for t in tasks[1:])]
        if differing:
            raise ValueError(f"ensemble members of task {type(tasks[0]).__name__} differ in {differing}, which fix the "
                             "task's shapes or code; only settings held in arrays can vary across one vmapped run")
        shapes = {tuple(jnp.shape(x) for x in jax.tree.leaves(t)) for t in tasks}
        if len(shapes) > 1:
            raise ValueError(f"ensemble members of task {type(tasks[0]).__name__} hold arrays of different shapes")
        return stack(tasks)

    def loss_positions(self) -> tuple[int, ...] | None:
        """Positions that ever carry loss, if the same for every sequence (lets the model skip the rest)."""
        return None

    def output_comparison(self, kind: str) -> tuple[str, tuple[int, ...] | None]:
        """How a second model's output (SPD's masked model's) is compared with a `kind` model's on this task: a
        distance of `toymi.decompose.parameters.losses.DISTANCES` that matches the training loss, and the output
        positions compared (None: every one). Default: KL between next-token distributions at every position (the
        reference code's comparison of language models)."""
        del kind
        return "kl", None

    def scored_logits(self, model, batch: Batch) -> tuple[Float[Array, "batch out vocab"], Batch]:
        """Logits at the loss positions (all positions if none are fixed) and the batch restricted to match."""
        positions = self.loss_positions()
        logits = jax.vmap(lambda t: model.forward(t, output_positions=positions)[0])(batch.tokens)
        return logits, batch.at_positions(positions)

    def loss(self, model, batch: Batch) -> Float[Array, ""]:
        return masked_cross_entropy(*self.scored_logits(model, batch))

    def evaluate(self, model, batch: Batch) -> dict[str, Array]:
        return self.metrics(*self.scored_logits(model, batch))

    def metrics(self, logits: Float[Array, "batch pos vocab"], batch: Batch) -> dict[str, Array]:
        return {"loss": masked_cross_entropy(logits, batch), "accuracy": masked_accuracy(logits, batch)}

    # ---- readable tokens ------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def render_tokens(self, tokens) -> list[str]:
        """One readable string per token id of one sequence (`[pos]`); feature-vector tasks: one per feature."""

    @abc.abstractmethod
    def to_string(self, tokens) -> str:
        """One input (`[pos]` token ids, or a feature vector) as text that `from_string` reads back."""

    @abc.abstractmethod
    def from_string(self, text: str) -> Array:
        """The input `text` describes (`[pos]` int32 token ids, or a float32 feature vector); a string that is not
        one of this task's inputs is a one-line `ValueError`."""

    def input_map(self, n_inputs: int = 512):
        """A `toymi.tasks.input_map.InputMap` of up to `n_inputs` inputs laid out on the task's natural map (the
        latents page draws each latent's activation on it), or None where the task has none."""
        return None

    # ---- predictions: what `toymi.show` and `toymi.generate` ask ------------------------------------------------

    def full_length(self) -> int:
        """Tokens in one complete sequence: one past the last scored position's target."""
        positions = self.loss_positions()
        if positions is None:
            return self.model_dims()["n_ctx"]
        return max(positions) + 2

    def shown_positions(self, tokens: Int[np.ndarray, " pos"]) -> tuple[int, ...]:
        """The positions of the input `tokens` (`[pos]` host ids, as the model reads them) whose next-token
        predictions are scored: the loss positions (all, if none are fixed), less any holding `padding_token`."""
        tokens = np.asarray(tokens)
        positions = self.loss_positions()
        positions = range(len(tokens)) if positions is None else (p for p in positions if p < len(tokens))
        return tuple(p for p in positions if self.padding_token is None or tokens[p] != self.padding_token)

    def generation_limit(self, prompt: Int[np.ndarray, "batch pos"]) -> int:
        """How many tokens `generate` may add after `prompt` (host token ids): up to a complete sequence. Tasks whose
        prompts must end somewhere particular (after `=`, after a whole move) refuse other prompts here."""
        prompt_len = prompt.shape[-1]
        limit = self.full_length() - prompt_len
        if limit <= 0:
            raise ValueError(f"{type(self).__name__}: a prompt of {prompt_len} tokens leaves nothing to generate "
                             f"(a complete sequence has {self.full_length()})")
        return limit

    def generation_step(self, tokens: Int[Array, " buffer"], pos: Int[Array, ""], token: Int[Array, ""],
                        step: Int[Array, ""]) -> tuple[Array, Array]:
        """The stopping rule, traced: after choosing `token`, the `step`-th new token (from 0), for position `pos`
        of `tokens` (the sequence so far), `(keep, stop)` says whether the token is part of the output and whether
        to stop after it. Default: keep every token; `generation_limit` alone ends the sequence."""
        del tokens, pos, token, step
        return jnp.asarray(True), jnp.asarray(False)
