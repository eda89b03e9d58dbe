"""Modular arithmetic (grokking): `a op b mod p` from the tokens `a b =`, scored on the last position.

The split follows Nanda et al.'s code: every pair, shuffled with Python's `random.Random(data_seed)`, the first
`int(frac_train * n_pairs)` for training — so `p=113, frac_train=0.3, data_seed=0` gives their 3,830 pairs exactly.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.host import to_device
from toymi.tasks.base import Batch, Task, masked_accuracy, masked_cross_entropy
from toymi.tasks.render import as_tokens, one_sequence
from toymi.errors import ConfigError
from toymi.trees import stack
from toymi.validate import is_int, number, one_of, problems, require

OPS = ("+", "-", "*", "/")
LOSSES = ("standard", "exact")


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def fourier_basis(p: int) -> tuple[Float[Array, "p p"], list[str]]:
    """Orthonormal Fourier basis over Z_p, one function per row: const, then cos k, sin k for k = 1..(p-1)/2."""
    x = np.arange(p)
    rows, names = [np.ones(p)], ["const"]
    for k in range(1, p // 2 + 1):
        rows += [np.cos(2 * np.pi * k * x / p), np.sin(2 * np.pi * k * x / p)]
        names += [f"cos {k}", f"sin {k}"]
    basis = np.stack(rows[:p])
    return jnp.asarray(basis / np.linalg.norm(basis, axis=1, keepdims=True), jnp.float32), names[:p]


_CHECKS = {"p": lambda p: None if is_int(p) and _is_prime(p) else "a prime", "op": one_of(OPS),
           "frac_train": number(0, 1, low_open=True, high_open=True), "loss": one_of(LOSSES)}


def _answers(a: np.ndarray, b: np.ndarray, op: str, p: int) -> np.ndarray:
    if op == "+":
        return (a + b) % p
    if op == "-":
        return (a - b) % p
    if op == "*":
        return (a * b) % p
    return (a * np.array([pow(int(v), p - 2, p) for v in b])) % p  # b^-1 by Fermat's little theorem


@functools.lru_cache(maxsize=8)
def answer_table(p: int, op: str) -> np.ndarray:
    """`[p, p]` int32: the answer to `a op b mod p` at `[a, b]` (0 where b = 0 for division)."""
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    table = _answers(a.ravel(), b.ravel(), op, p).reshape(p, p).astype(np.int32)
    table.setflags(write=False)  # shared by the cache
    return table


class ModularArithmetic(Task):
    """`a op b mod p` for a prime `p`; tokens `a`, `b` in [0, p) and `=` as token `p`.

    **Arguments:**

    - `p`: a prime modulus.
    - `op`: one of `"+"`, `"-"`, `"*"`, `"/"` (division leaves out b = 0).
    - `frac_train`: fraction of all pairs used for training, in (0, 1).
    - `data_seed`: seed of the shuffle that splits pairs into train and test.
    - `loss`: `"standard"` (float32 `log_softmax`) or `"exact"` (`exact_token_nll`: exact for tiny losses, where
      float32 `log_softmax` can only return multiples of ~1.2e-7; Nanda et al. compute in float64 for this). Used for
      training and for the logged losses.
    """

    p: int = eqx.field(static=True)
    op: str = eqx.field(static=True)
    frac_train: float = eqx.field(static=True)
    data_seed: int = eqx.field(static=True)
    loss_kind: str = eqx.field(static=True)
    train: Batch
    test: Batch

    def __init__(self, p: int = 113, op: str = "+", frac_train: float = 0.3, data_seed: int = 0,
                 loss: str = "standard"):
        _check_settings(p, op, frac_train, loss)
        self.p, self.op, self.frac_train, self.data_seed = p, op, float(frac_train), int(data_seed)
        self.loss_kind = loss
        pairs = [(a, b) for a in range(p) for b in range(1 if op == "/" else 0, p)]
        random.Random(data_seed).shuffle(pairs)
        n_train = int(frac_train * len(pairs))
        pairs = np.array(pairs)
        self.train = self._batch(pairs[:n_train])
        self.test = self._batch(pairs[n_train:])

    def _batch(self, pairs: np.ndarray) -> Batch:
        a, b = pairs[:, 0], pairs[:, 1]
        n = len(pairs)
        tokens = np.stack([a, b, np.full(n, self.p)], axis=1)
        targets = np.zeros((n, 3), np.int32)
        targets[:, -1] = _answers(a, b, self.op, self.p)
        loss_mask = np.zeros((n, 3), np.float32)
        loss_mask[:, -1] = 1.0
        return Batch(to_device(tokens, np.int32), to_device(targets), to_device(loss_mask))

    @classmethod
    def stack(cls, tasks: Sequence["ModularArithmetic"]) -> "ModularArithmetic":
        """Members that differ in `frac_train` or `data_seed`, as masks over one list of pairs per member.

        Member i's pairs in its shuffled order are split at its own `n_i`. The stacked train set holds each member's
        first `max n` pairs with the loss mask off past `n_i`; the test set holds its pairs from `min n` on, with
        the mask off before `n_i`. Shapes agree, so the ensemble is one program; each member trains and is scored
        on exactly its own split (members with smaller train sets compute, masked, on a few more pairs).
        """
        if len({(t.p, t.op) for t in tasks}) > 1:
            raise ValueError("ensemble members of modular_arithmetic must share p and op")
        if len({(t.frac_train, t.data_seed) for t in tasks}) == 1:
            return super().stack(tasks)
        sizes = [len(t.train) for t in tasks]
        widest, narrowest = max(sizes), min(sizes)
        members = []
        for t, n in zip(tasks, sizes):
            every = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), t.train, t.test)  # pairs in shuffled order
            index = jnp.arange(len(every))[:, None]
            train = jax.tree.map(lambda x: x[:widest], every)
            train = Batch(train.tokens, train.targets, train.loss_mask * (index[:widest] < n))
            test = jax.tree.map(lambda x: x[narrowest:], every)
            test = Batch(test.tokens, test.targets, test.loss_mask * (index[narrowest:] >= n))
            members.append(eqx.tree_at(lambda m: (m.train, m.test), tasks[0], (train, test)))
        return stack(members)

    def all_pairs(self) -> Batch:
        """Every `(a, b)` of the task (train and test), `a` major: row `a·p + b` (`a·(p-1) + b-1` for division,
        which leaves out b = 0)."""
        a, b = np.meshgrid(np.arange(self.p), np.arange(1 if self.op == "/" else 0, self.p), indexing="ij")
        return self._batch(np.stack([a.ravel(), b.ravel()], axis=1))

    def sample(self, key: PRNGKeyArray, n: int) -> Batch:
        """`n` pairs drawn uniformly from all `p²` (train and test alike: the distribution the model computes on),
        on device."""
        k_a, k_b = jax.random.split(key)
        a = jax.random.randint(k_a, (n,), 0, self.p)
        b = jax.random.randint(k_b, (n,), 1 if self.op == "/" else 0, self.p)
        tokens = jnp.stack([a, b, jnp.full(n, self.p, jnp.int32)], axis=1).astype(jnp.int32)
        targets = jnp.zeros((n, 3), jnp.int32).at[:, 2].set(jnp.asarray(answer_table(self.p, self.op))[a, b])
        return Batch(tokens, targets, jnp.zeros((n, 3), jnp.float32).at[:, 2].set(1.0))

    def train_batch(self, key: PRNGKeyArray) -> Batch:
        del key  # full-batch training
        return self.train

    def eval_batches(self) -> dict[str, Batch]:
        return {"train": self.train, "test": self.test}

    def loss(self, model, batch: Batch) -> Float[Array, ""]:
        return masked_cross_entropy(*self.scored_logits(model, batch), exact=self.loss_kind == "exact")

    def metrics(self, logits: Float[Array, "batch pos vocab"], batch: Batch) -> dict[str, Array]:
        return {"loss": masked_cross_entropy(logits, batch, exact=self.loss_kind == "exact"),
                "accuracy": masked_accuracy(logits, batch)}

    def loss_positions(self) -> tuple[int, ...]:
        return (2,)  # only the answer after `=` is scored

    def model_dims(self) -> dict[str, int]:
        return {"d_vocab": self.p + 1, "d_vocab_out": self.p, "n_ctx": 3}

    def input_map(self, n_inputs: int = 512):
        """Every (a, b) in order on a p × p grid (p × (p - 1) for division, which leaves out b = 0), whatever
        `n_inputs`: the map is only readable whole."""
        from toymi.tasks.input_map import InputMap

        first = 1 if self.op == "/" else 0
        tokens = np.array(self.all_pairs().tokens)
        n = len(tokens)
        return InputMap(tokens, np.full(n, 2), np.arange(n), (self.p, self.p - first), ("a", "b"))

    @classmethod
    def dims_from_settings(cls, kind: str, *, p: int = 113, op: str = "+", frac_train: float = 0.3,
                           data_seed: int = 0, loss: str = "standard") -> dict[str, int]:
        """The settings checked and the dims returned without building the p² pairs (a spec's validation)."""
        _check_settings(p, op, frac_train, loss)
        return {"d_vocab": p + 1, "d_vocab_out": p, "n_ctx": 3}

    def render_tokens(self, tokens) -> list[str]:
        """Numbers `0 .. p-1` and `=` (token `p`)."""
        return ["=" if t == self.p else str(t) for t in one_sequence(tokens, self.p + 1, "modular_arithmetic")]

    def to_string(self, tokens) -> str:
        """`5 7 =`, or `5 7 = 12` with the answer."""
        return " ".join(self.render_tokens(tokens))

    def from_string(self, text: str) -> Array:
        """Tokens of a prefix of `a b = c` (numbers in `[0, p)`), e.g. `5 7 =`."""
        words, ids = text.split(), []
        if not 0 < len(words) <= 4:
            raise ValueError(f"modular_arithmetic: {text!r} is not a prefix of 'a b = c'")
        for i, word in enumerate(words):
            if i == 2:
                if word != "=":
                    raise ValueError(f"modular_arithmetic: expected '=' as the third word of {text!r} ('a b = c')")
                ids.append(self.p)
            elif not word.isdigit() or int(word) >= self.p:
                raise ValueError(f"modular_arithmetic: {word!r} in {text!r} is not a number in [0, {self.p})")
            else:
                ids.append(int(word))
        return as_tokens(ids)

    def generation_limit(self, prompt) -> int:
        """The answer: the prompt must be `a b =`."""
        prompt_len = prompt.shape[-1]
        if prompt_len != 3:
            raise ValueError(f"modular_arithmetic: generate writes the answer after 'a b =' (3 tokens), got a "
                             f"prompt of {prompt_len}")
        return 1

    def facts(self) -> dict:
        """The Fourier basis over Z_p (rows) and its names: the basis the grokking circuit computes in."""
        basis, names = fourier_basis(self.p)
        return {"fourier_basis": basis, "fourier_names": names}


def _check_settings(p, op, frac_train, loss) -> None:
    """Every problem with a modular task's settings, in one `ConfigError` (cheap: nothing is built)."""
    require("modular_arithmetic task", problems({"p": p, "op": op, "frac_train": frac_train, "loss": loss}, _CHECKS))
    n_pairs = p * (p - 1 if op == "/" else p)
    if not 0 < int(frac_train * n_pairs) < n_pairs:
        raise ConfigError(f"frac_train={frac_train} leaves an empty train or test set for p={p}")
