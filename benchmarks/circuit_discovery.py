"""Every circuit-discovery method on every planted circuit: ROC AUC against the true edges, CPR, CMD, edges found.

    PYTHONPATH=. python benchmarks/circuit_discovery.py            # the README table
    PYTHONPATH=. python benchmarks/circuit_discovery.py --smoke    # one model, two methods
    PYTHONPATH=. python benchmarks/circuit_discovery.py --induction-run RUN   # plus a trained induction model

Planted circuits: noising with zero ablation (each is exact under it: see toymi/circuits/planted.py). The trained
induction model (`toymi train tasks/induction_quick.toml --out RUN`): noising, patching from other repeated random
tokens; its true edges are stated in toymi/circuits/trained.py (AUC against certain + judged edges, and in brackets
against the certain ones alone).
"""

from __future__ import annotations

import argparse

from toymi.circuits.forward import graph_of
from toymi.circuits.methods import METHODS, discover
from toymi.circuits.patching import setup
from toymi.circuits.planted import PLANTED
from toymi.circuits.scoring import faithfulness_curve, roc_auc


def rows(targets, methods):
    """`targets`: (Planted, certain edge names or None) pairs."""
    for p, certain in targets:
        s = setup(p.model, p.clean, p.corrupted, direction="noising", ablation=p.ablation)
        graph = graph_of(p.model.config)
        true = graph.edge_set(p.true_edges)
        for method in methods:
            found = discover(method, p.model, s, p.metric)
            curve = faithfulness_curve(p.model, *s, p.metric, found.scores)
            auc = f"{roc_auc(found.scores, true):.3f}"
            if certain is not None:
                auc += f" ({roc_auc(found.scores, graph.edge_set(certain)):.3f})"
            yield (p.name, method, auc, curve.cpr, curve.cmd,
                   f"{int((found.circuit & true).sum())}/{int(true.sum())} + {int((found.circuit & ~true).sum())}",
                   bool((found.circuit == true).all()), found.seconds)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one model, two methods")
    parser.add_argument("--induction-run", help="a run of tasks/induction_quick.toml to score too")
    args = parser.parse_args(argv)
    targets = [(PLANTED[name](), None) for name in (["copy_first"] if args.smoke else PLANTED)]
    if args.induction_run:
        import toymi
        from toymi.circuits.trained import trained_induction

        run = toymi.load_run(args.induction_run)
        vocab = run.task.vocab
        planted, truth = trained_induction(run.model, bos=vocab, vocab=vocab)
        targets.append((planted, truth.certain))
    methods = ["exact", "eap"] if args.smoke else list(METHODS)
    print("| model | method | AUC | CPR | CMD | true found + false found | circuit exact | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for model, method, auc, cpr, cmd, found, exact, seconds in rows(targets, methods):
        print(f"| {model} | {method} | {auc} | {cpr:.3f} | {cmd:.3f} | {found} | {'yes' if exact else 'no'} "
              f"| {seconds:.2f} |")


if __name__ == "__main__":
    main()
