"""Chess games generated per second: random and heuristic players, in this process and over worker processes.

    python benchmarks/chess_generation.py [--games 400] [--max-plies 40] [--workers N] [--rounds 3]
    python benchmarks/chess_generation.py --smoke --out DIR    # seconds: 4 games of 4 plies, 2 workers, 1 round

Times `toymi.tasks.chess.generate.generate` (no cache) for each player with `workers=1` (played in this process) and
with `--workers` processes (default: one per CPU; their start-up, ~0.3 s each, is included), the median of
`--rounds` rounds. Also checks that the parallel games equal the serial ones. Prints a report and writes the numbers
to `DIR/chess_generation.json` (default DIR: benchmarks/results), with the foreign load (cores other processes kept
busy) of each timing: on a shared machine the parallel speed-up says more about the neighbours than the code.
"""

from __future__ import annotations

import argparse
import os
import time

import _bench


def _children_cpu() -> float:
    """CPU seconds of this process's finished child processes (the generation workers)."""
    t = os.times()
    return t.children_user + t.children_system


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--games", type=int, default=400, help="games per timing")
    p.add_argument("--max-plies", type=int, default=40, help="plies per game at most")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the parallel timing")
    p.add_argument("--rounds", type=int, default=3, help="timings per variant (median taken)")
    p.add_argument("--out", default=str(_bench.RESULTS_DIR), help="where chess_generation.json goes")
    p.add_argument("--smoke", action="store_true", help="4 games of 4 plies, 2 workers, 1 round")
    args = p.parse_args(argv)
    if args.smoke:
        args.games, args.max_plies, args.workers, args.rounds = 4, 4, 2, 1
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import toymi.tasks.chess.generate as generate_module

    machine = _bench.machine()  # its load average is the one at the start
    saved = generate_module.MIN_GAMES_PER_WORKER
    generate_module.MIN_GAMES_PER_WORKER = 1  # always use the pool when asked to, however few the games
    try:
        results = measure(args)
    finally:  # a caller in this process (a test) gets the module as it was
        generate_module.MIN_GAMES_PER_WORKER = saved
    payload = {"benchmark": "chess_generation", "args": {k: v for k, v in vars(args).items() if k != "out"},
               "machine": machine, "versions": _bench.versions(), "results": results}
    print(f"wrote {_bench.write_json('chess_generation', payload, args.out)}")
    return payload


def measure(args) -> dict:
    """Per player and worker count: games/s (median of the rounds), the round times, plies per game and foreign load;
    per player the parallel speed-up."""
    import numpy as np

    from toymi.tasks.chess.generate import Players, generate

    results = {}
    for player in ("random", "heuristic"):
        players = Players(player, temperature=0.25, epsilon=0.05, max_plies=args.max_plies, seed=0)
        for workers in (1, args.workers):
            times, loads = [], []
            for _ in range(args.rounds):
                children = _children_cpu()
                with _bench.ForeignLoad() as load:
                    t0 = time.perf_counter()
                    games = generate(players, "train", args.games, workers=workers)
                    times.append(time.perf_counter() - t0)
                # ForeignLoad counts this process's workers as foreign: take their CPU time back out
                ours = (_children_cpu() - children) / times[-1]
                loads.append(None if load.cores is None else max(0.0, load.cores - ours))
            if workers == 1:
                serial = games
            else:
                assert all(np.array_equal(serial[k], games[k]) for k in games), "parallel games differ from serial"
            key = f"{player}_workers{workers}"
            results[key] = {
                "games_per_s": args.games / _bench.median(times),
                "seconds": times,
                "plies_per_game": float(games["n_plies"].mean()),
                "foreign_load_cores": loads,
            }
            print(f"{player:9s} workers={workers:2d}: {results[key]['games_per_s']:8.1f} games/s "
                  f"({results[key]['plies_per_game']:.1f} plies/game; times {_bench.spread(times)} s; "
                  f"foreign load {', '.join(f'{x:.1f}' for x in loads if x is not None)} cores)")
        results[f"{player}_speedup"] = (results[f"{player}_workers{args.workers}"]["games_per_s"]
                                        / results[f"{player}_workers1"]["games_per_s"])
        print(f"{player:9s} parallel speed-up with {args.workers} workers: {results[f'{player}_speedup']:.2f}x")
    return results


if __name__ == "__main__":
    main()
