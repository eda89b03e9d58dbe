"""`show` and `generate` on models whose predictions are known by construction, on chess against the task's own
legal-move metric, and (slow) on a trained addition model."""

import chess
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.predict import generation
from toymi.tasks import Addition, ChessMoves, Induction, ModularArithmetic, ToyModelsOfSuperposition
from toymi.tasks.chess import legal_move_rate
from toymi.tasks.chess.labels import NEXT_FROM
from toymi.tasks.chess.tokens import PAD, decode


def lookup_model(n_ctx: int, d_vocab: int, d_vocab_out: int, next_of: dict[int, int], scale: float = 10.0):
    """A transformer whose logits at a position depend only on its token: `scale` on `next_of[token]`, 0 elsewhere
    (one-hot embeddings, attention's output zeroed, the unembedding a lookup table)."""
    config = toymi.ModelConfig(d_vocab=d_vocab, d_vocab_out=d_vocab_out, n_ctx=n_ctx, d_model=d_vocab, n_heads=1,
                               d_mlp=0)
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    W_U = np.zeros((d_vocab, d_vocab_out), np.float32)
    for token, nxt in next_of.items():
        W_U[token, nxt] = scale
    return eqx.tree_at(lambda m: (m.W_E, m.W_pos, m.blocks.attn.W_O, m.W_U), model,
                       (jnp.eye(d_vocab), jnp.zeros((n_ctx, d_vocab)), jnp.zeros_like(model.blocks.attn.W_O),
                        jnp.asarray(W_U)))


@pytest.mark.slow
def test_generate_feeds_each_token_back_and_writes_the_answer_digits():
    task = Addition(n_digits=2, eval_size=4)
    # '=' (11) -> 7, then each digit d -> d + 1: the answer is 789 only if every new token is read back
    model = lookup_model(9, 12, 10, {11: 7, 10: 0, **{d: (d + 1) % 10 for d in range(10)}})
    out = toymi.generate(model, task, "12+34=")
    assert out.dtype == jnp.int32 and task.to_string(out) == "12+34=789"
    assert task.to_string(toymi.generate(model, task, "12+34=7")) == "12+34=789"
    # batches of prompts: the chess test below (rows that stop at different lengths)
    with pytest.raises(ValueError, match="the prompt must hold the question"):
        toymi.generate(model, task, "12+3")
    with pytest.raises(ValueError, match="leaves nothing to generate"):
        toymi.generate(model, task, "12+34=789")


@pytest.mark.slow
def test_generate_compiles_once_for_every_prompt_length_and_for_sampling():
    task = Addition(n_digits=2, eval_size=4)
    model = lookup_model(9, 12, 10, {11: 7, 10: 0, **{d: (d + 1) % 10 for d in range(10)}})
    toymi.generate(model, task, "12+34=")
    before = generation.TRACES[0]
    toymi.generate(model, task, "55+44=1")
    toymi.generate(model, task, "55+44=10")
    sampled = toymi.generate(model, task, "55+44=", temperature=1.0, key=jax.random.PRNGKey(1))
    assert generation.TRACES[0] == before
    assert task.to_string(sampled) == "55+44=789"  # logits 10 apart: sampling at T=1 picks the top (p > 0.9998)
    hot = [task.to_string(toymi.generate(model, task, "55+44=", temperature=100.0, key=jax.random.PRNGKey(i)))
           for i in range(8)]
    assert len(set(hot)) > 1  # at a high temperature sampling does sample
    with pytest.raises(ValueError, match="needs a key"):
        toymi.generate(model, task, "12+34=", temperature=0.5)
    with pytest.raises(ValueError, match="temperature must be"):
        toymi.generate(model, task, "12+34=", temperature=-1.0)


@pytest.mark.slow
def test_show_reports_top_k_with_probabilities_and_the_actual_token(capsys):
    task = ModularArithmetic(p=5, frac_train=0.5)
    model = lookup_model(3, 6, 5, {5: 3}, scale=2.0)  # at '=' (5): logit 2 on the answer 3, 0 on the rest
    rows = toymi.show(model, task, "1 2 = 4", k=2)
    assert [r.position for r in rows] == [2]  # only the answer position is scored
    (row,) = rows
    p_top = np.exp(2) / (np.exp(2) + 4)
    assert row.token == "=" and row.top[0][0] == "3" and row.top_ids[0] == 3
    np.testing.assert_allclose(row.top[0][1], p_top, rtol=1e-6)
    np.testing.assert_allclose(row.top[1][1], 1 / (np.exp(2) + 4), rtol=1e-6)
    assert (row.actual, row.actual_rank) == ("4", 4)  # after n_ctx tokens, read not fed; ties rank by id
    np.testing.assert_allclose(row.actual_probability, 1 / (np.exp(2) + 4), rtol=1e-6)
    assert toymi.show(model, task, "1 2 =", verbose=False)[0].actual is None
    printed = capsys.readouterr().out
    assert "input: 1 2 = " in printed and "'3' " + f"{p_top:.3f}" in printed
    # generate writes the one answer token, past the 3 tokens the model reads
    assert task.to_string(toymi.generate(model, task, "1 2 =")) == "1 2 = 3"
    with pytest.raises(ValueError, match="after 'a b =' \\(3 tokens\\), got a prompt of 2"):
        toymi.generate(model, task, "1 2")


@pytest.mark.slow
def test_generate_on_induction_fills_the_sequence():
    task = Induction(vocab=6, subseq_len=3, n_repeats=2, eval_size=2)  # <bos> + 6 tokens
    model = lookup_model(7, 7, 6, {6: 0, **{t: (t + 2) % 6 for t in range(6)}})
    assert task.to_string(toymi.generate(model, task, "<bos> 1")) == "<bos> 1 3 5 1 3 5"


@pytest.mark.slow
def test_show_gives_the_actual_next_token_rank_and_refuses_feature_tasks():
    task = Addition(n_digits=2, eval_size=4)
    model = lookup_model(9, 12, 10, {11: 7, **{d: (d + 1) % 10 for d in range(10)}})
    rows = toymi.show(model, task, task.from_string("12+34=045"), k=3, verbose=False)
    assert [r.position for r in rows] == [5, 6, 7]
    assert [r.top[0][0] for r in rows] == ["7", "1", "5"]
    assert [(r.actual, r.actual_rank) for r in rows] == [("0", 1), ("4", 4), ("5", 0)]  # ties rank by id
    np.testing.assert_allclose(rows[2].actual_probability, np.exp(10) / (np.exp(10) + 9), rtol=1e-6)
    tms = ToyModelsOfSuperposition(n_features=3, eval_size=4)
    with pytest.raises(TypeError, match="output feature values"):
        toymi.show(model, tms, "f1=0.5")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        toymi.show(model, task, "12+34=", k=0)


def chess_lookup_model(n_ctx: int):
    """Every token maps to a square (so every generated move parses): BOS -> e2, e2 -> e4 (the first move is legal),
    the rest spread over the board (some legal, most not)."""
    next_of = {t: 2 + (7 * t + 3) % 64 for t in range(70)}
    next_of.update({1: 2 + chess.E2, 2 + chess.E2: 2 + chess.E4})
    return lookup_model(n_ctx, 70, 70, next_of)


def generated_moves(model, task, tokens):
    """Greedy `generate` at every move start of the games `tokens`, batched by prompt length (rows padded to one
    batch size, so every call reuses one compile); returns [(game, start, new tokens)]."""
    kind = np.asarray(task.test.next_kind[: len(tokens)])
    out = []
    for start in sorted(set(np.nonzero(kind == NEXT_FROM)[1])):
        games = np.nonzero(kind[:, start] == NEXT_FROM)[0]
        rows = np.concatenate([games, np.repeat(games[:1], len(tokens) - len(games))])
        gen = np.asarray(toymi.generate(model, task, tokens[rows, : start + 1]))
        out += [(int(g), int(start), gen[i, start + 1:]) for i, g in enumerate(games)]
    return out


def python_chess_legal_fraction(task, tokens, moves):
    legal, parsed = 0, 0
    for game, start, new in moves:
        new = [int(t) for t in new]
        while new and new[-1] == PAD:
            new.pop()
        board = chess.Board()
        for m in decode(tokens[game, : start + 1]):
            board.push(m)
        try:
            (move,) = decode([1, *new])
        except ValueError:
            continue  # not a move: not legal
        parsed += 1
        # the legal-move metric's convention: a pawn reaching the last rank without a promotion token promotes to a
        # queen
        if move.promotion is None and board.piece_type_at(move.from_square) == chess.PAWN \
                and chess.square_rank(move.to_square) in (0, 7):
            move = chess.Move(move.from_square, move.to_square, promotion=chess.QUEEN)
        legal += board.is_legal(move)
    return legal / len(moves), parsed


@pytest.mark.slow
def test_chess_generated_moves_parse_and_their_legal_fraction_is_the_tasks_metric(tmp_path):
    task = ChessMoves(n_games=8, n_test_games=8, max_plies=8, cache_dir=str(tmp_path / "cache"))
    tokens = np.asarray(task.test.tokens)
    model = chess_lookup_model(task.model_dims()["n_ctx"])
    moves = generated_moves(model, task, tokens)
    metric = legal_move_rate(model, task, n_games=len(tokens))
    assert len(moves) == metric["n_moves"]
    fraction, parsed = python_chess_legal_fraction(task, tokens, moves)
    assert fraction == metric["legal_move_rate"]
    assert parsed == len(moves) and 0 < fraction < 1  # every generation is a move; some are legal, most not
    for game, start, new in moves:  # and renders as one more UCI word after the prompt
        prompt = task.to_string(tokens[game, : start + 1])
        text = task.to_string(np.concatenate([tokens[game, : start + 1], new]))
        assert text.startswith(prompt) and len(text.split()) == len(prompt.split()) + 1
    with pytest.raises(ValueError, match="ends inside a move"):
        toymi.generate(model, task, "e2e4 e7")


def test_show_skips_the_pad_after_a_chess_game_ends(tmp_path):
    task = ChessMoves(n_games=2, n_test_games=2, max_plies=8, cache_dir=str(tmp_path / "cache"))
    model = chess_lookup_model(task.model_dims()["n_ctx"])
    game = np.asarray(task.from_string("e2e4 e7e5"))
    padded = np.concatenate([game, np.full(task.model_dims()["n_ctx"] - len(game), PAD)])
    rows = toymi.show(model, task, padded, k=2, verbose=False)
    assert [r.position for r in rows] == [0, 1, 2, 3, 4]  # <bos> e2 e4 e7 e5: no prediction at a PAD
    assert [r.token for r in rows] == ["<bos>", "e2", "e4", "e7", "e5"]
    assert [r.actual for r in rows] == ["e2", "e4", "e7", "e5", None]  # PAD is never a target
    assert rows[0].top[0][0] == "e2" and rows[1].top[0][0] == "e4"  # the lookup model: BOS -> e2 -> e4
    assert [(r.top, r.actual) for r in rows] == [(r.top, r.actual) for r in toymi.show(model, task, game, k=2,
                                                                                        verbose=False)]
    assert task.shown_positions(np.array([1, PAD, 5])) == (0, 2)  # PAD anywhere is skipped


@pytest.mark.slow
def test_a_trained_addition_model_writes_correct_sums(tmp_path):
    from toymi.experiment.spec import Spec
    from toymi.experiment import train
    from toymi.train.step import evaluate
    # 1 layer (the compile is most of this test's time): measured 0.879 of the 256 sums right after 300 steps
    spec = Spec.from_dict({
        "task": {"name": "addition", "n_digits": 2, "batch_size": 128, "eval_size": 256},
        "model": {"n_layers": 1, "d_model": 64, "n_heads": 4, "d_mlp": 128, "normalization": "layernorm"},
        "train": {"steps": 300, "lr": 3e-3, "eval_every": 300, "checkpoint_every": 300, "warmup_steps": 20},
    })
    train(spec, tmp_path / "run", progress=False)
    run = toymi.load_run(tmp_path / "run")
    task = run.task
    questions = task.test.tokens[:, : 2 * 2 + 2]
    out = np.asarray(toymi.generate(run.model, task, questions))
    correct = [int(t[:2]) + int(t[3:5]) == int(t[6:]) for t in map(task.to_string, out)]
    # greedy generation writes the whole answer right exactly when teacher-forced argmax gets every digit right
    # (the compiled evaluation training ran: task.evaluate on every eval set, here the test set's)
    metric = float(evaluate(run.model, task)["test_answer_accuracy"])
    assert np.mean(correct) == pytest.approx(metric, abs=1e-6)
    assert np.mean(correct) > 0.5


@pytest.mark.slow
def test_a_briefly_trained_chess_model_generates_moves_as_legal_as_its_metric_says(tiny_chess_run):
    run = toymi.load_run(tiny_chess_run)  # tests/conftest.py: 1 layer, 100 steps on 400 games, 50 test games
    tokens = np.asarray(run.task.test.tokens)
    moves = generated_moves(run.model, run.task, tokens)
    fraction, parsed = python_chess_legal_fraction(run.task, tokens, moves)
    metric = legal_move_rate(run.model, run.task, n_games=len(tokens))
    assert fraction == metric["legal_move_rate"] and len(moves) == metric["n_moves"]
    # measured: 500 of 500 generations parse as moves, 0.766 legal (the metric: 0.766)
    assert parsed / len(moves) > 0.9 and fraction > 0.3
