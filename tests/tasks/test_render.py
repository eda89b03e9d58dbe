"""Every task renders its tokens, writes an input as text and reads it back; a bad string is a one-line error."""

import jax.numpy as jnp
import numpy as np
import pytest

from toymi.tasks import (Addition, AndGates, ChessMoves, CompressedComputation, Induction, ModularArithmetic,
                         ToyModelsOfSuperposition)
from toymi.tasks.and_gates import encode_tokens
from toymi.tasks.chess.tokens import encode_game


@pytest.mark.slow
def test_addition_renders_digits_and_operators_and_round_trips():
    task = Addition(n_digits=3, eval_size=8)
    tokens = task.test.tokens[0]
    text = task.to_string(tokens)
    assert len(text) == 12 and text[3] == "+" and text[7] == "=" and text.replace("+", "").replace("=", "").isdigit()
    a, b, s = int(text[:3]), int(text[4:7]), int(text[8:])
    assert a + b == s  # the rendered answer is the sum: digits are rendered in the order they are written
    np.testing.assert_array_equal(task.from_string(text), tokens)
    assert task.render_tokens(task.from_string("120+045=")) == list("120+045=")
    assert task.from_string("120 + 045 =").dtype == jnp.int32
    for bad, match in (("12+045=", "expected a digit at character 2"), ("1234+5", r"expected '\+' at character 3"),
                       ("120+04a", "expected a digit at character 6"),
                       ("120+045=01655", "not a prefix"), ("", "not a prefix")):
        with pytest.raises(ValueError, match=match):
            task.from_string(bad)
    with pytest.raises(ValueError, match=r"token id 12 at position 1 is not in its vocabulary \[0, 12\)"):
        task.render_tokens(np.array([1, 12]))
    with pytest.raises(ValueError, match="one sequence at a time"):
        task.to_string(task.test.tokens[:2])


def test_modular_renders_a_b_equals_and_round_trips():
    task = ModularArithmetic(p=7, frac_train=0.5)
    tokens = task.train.tokens[0]
    text = task.to_string(tokens)
    a, b, eq = text.split()
    assert eq == "=" and int(a) == tokens[0] and int(b) == tokens[1]
    np.testing.assert_array_equal(task.from_string(text), tokens)
    assert task.render_tokens(np.array([6, 0, 7, 6])) == ["6", "0", "=", "6"]
    assert task.to_string(task.from_string("3 4 = 0")) == "3 4 = 0"
    for bad in ("3 7 =", "3 4 + 0", "3 4 = 0 1", "x 4 ="):
        with pytest.raises(ValueError, match="modular_arithmetic"):
            task.from_string(bad)


@pytest.mark.slow
def test_induction_renders_ids_and_bos_and_round_trips():
    task = Induction(vocab=20, subseq_len=4, n_repeats=2, eval_size=4)
    tokens = task.evals["test"].tokens[0]
    words = task.render_tokens(tokens)
    assert words[0] == "<bos>" and words[1:5] == words[5:9] and all(w.isdigit() for w in words[1:])
    np.testing.assert_array_equal(task.from_string(task.to_string(tokens)), tokens)
    for bad, match in (("3 4", "start with <bos>"), ("<bos> 3 <bos>", "is not a token"), ("<bos> 20", "not a token"),
                       ("<bos> " + "1 " * 9, "has 10 tokens")):
        with pytest.raises(ValueError, match=match):
            task.from_string(bad)
    no_bos = Induction(vocab=20, subseq_len=4, n_repeats=2, eval_size=4, bos=False)
    assert no_bos.to_string(no_bos.from_string("1 2 3")) == "1 2 3"
    with pytest.raises(ValueError, match=r"token id 20 .* \[0, 20\)"):
        no_bos.render_tokens(np.array([20]))


def test_chess_renders_squares_and_moves_in_uci_and_san(tmp_path):
    task = ChessMoves(n_games=4, n_test_games=4, max_plies=8, cache_dir=str(tmp_path))
    tokens = encode_game(["e2e4", "e7e5", "g1f3", "b8c6"])
    assert task.render_tokens(tokens) == ["<bos>", "e2", "e4", "e7", "e5", "g1", "f3", "b8", "c6"]
    assert task.to_string(tokens) == "e2e4 e7e5 g1f3 b8c6"
    assert task.to_string(tokens, notation="san") == "1. e4 e5 2. Nf3 Nc6"
    np.testing.assert_array_equal(task.from_string("1. e4 e5 2. Nf3 Nc6", notation="san"), tokens)
    np.testing.assert_array_equal(task.from_string("e2e4 e7e5 g1f3 b8c6"), tokens)
    promo = encode_game(["a2a4", "b7b5", "a4b5", "a7a6", "b5a6", "c8b7", "a6b7", "b8c6", "b7a8q"])
    assert task.to_string(promo).endswith("b7a8q") and task.render_tokens(promo)[-1] == "=q"
    assert task.to_string(promo, notation="san").endswith("bxa8=Q")
    assert task.to_string(task.from_string("e2e4 e7")) == "e2e4 e7"  # a move in progress
    games = task.test.tokens  # generated games, PAD-padded: the text drops the padding
    for game in np.asarray(games):
        text = task.to_string(game)
        n = int((game != 0).sum())
        np.testing.assert_array_equal(task.from_string(text), game[:n])
        assert task.from_string(task.to_string(game, notation="san"), notation="san").tolist() == game[:n].tolist()
    for bad, notation, match in (("e2e9", "uci", "not a UCI move"), ("e2e4 Ke2", "uci", "not a UCI move"),
                                 ("1. e5", "san", "not a legal move in SAN"), ("e2e4", "pgn", "notation must be")):
        with pytest.raises(ValueError, match=match):
            task.from_string(bad, notation=notation)
    with pytest.raises(ValueError, match="illegal"):
        task.to_string(encode_game(["e2e5"]), notation="san")


@pytest.mark.parametrize("make", [
    lambda: ToyModelsOfSuperposition(n_features=8, feature_probability=0.3, eval_size=16),
    lambda: CompressedComputation(n_features=8, feature_probability=0.3, n_eval=16),
], ids=["tms", "compressed_computation"])
def test_feature_tasks_show_active_features_and_round_trip_exactly(make):
    task = make()
    x = (task.test.x if hasattr(task, "test") else task.eval_batches()["eval"].x)[:16]
    for row in np.asarray(x):
        text = task.to_string(row)
        active = np.nonzero(row)[0]
        assert [w.split("=")[0] for w in text.split()] == ([f"f{i}" for i in active] if active.size
                                                           else ["(no", "active", "features)"])
        np.testing.assert_array_equal(task.from_string(text), row)  # bit for bit
        labels = task.render_tokens(row)
        assert len(labels) == 8 and labels[int(active[0])].startswith(f"f{active[0]}=") if active.size else True
    assert task.to_string(np.array([0, 0.71, 0, 0, 0, 0, 0, 0.2], np.float32)) == "f1=0.71 f7=0.2"
    assert task.from_string("(no active features)").tolist() == [0.0] * 8
    for bad, match in (("f8=0.1", r"not in \[0, 8\)"), ("f1=0.1 f1=0.2", "appears twice"), ("f1", "cannot read"),
                       ("f1=nan", "no finite value"), ("f1=abc", "no finite value")):
        with pytest.raises(ValueError, match=match):
            task.from_string(bad)
    with pytest.raises(ValueError, match="one \\[n_features=8\\] feature vector"):
        task.to_string(np.zeros((2, 8)))


def test_and_gates_render_features_and_the_transformer_tokens():
    task = AndGates(n_features=4, gates="all", n_eval=8)
    x = np.array([1, 0, 1, 0], np.float32)
    assert task.to_string(x) == "f0 f2"
    np.testing.assert_array_equal(task.from_string("f0 f2"), x)
    assert task.render_tokens(encode_tokens(jnp.asarray(x))) == ["f0=1", "f1=0", "f2=1", "f3=0", "<read>"]
    assert task.render_tokens(x) == ["f0=1", "f1=0", "f2=1", "f3=0"]
    for row in np.asarray(task.eval_set.x):
        np.testing.assert_array_equal(task.from_string(task.to_string(row)), row)
    with pytest.raises(ValueError, match="cannot read 'f1=1'"):
        task.from_string("f1=1")
    with pytest.raises(ValueError, match="boolean features are 0 or 1"):
        task.to_string(np.array([0.5, 0, 0, 0]))


def test_every_registered_task_implements_the_rendering_protocol():
    from toymi.tasks import TASKS, Task
    for cls in TASKS.values():
        for name in ("render_tokens", "to_string", "from_string"):
            assert getattr(cls, name) is not getattr(Task, name), (cls.__name__, name)  # its own, not the abstract one
