"""Every circuit-discovery method on every planted circuit: ROC AUC against the true edges, CPR, CMD, edges found.

    PYTHONPATH=. python benchmarks/circuit_discovery.py            # the README table
    PYTHONPATH=. python benchmarks/circuit_discovery.py --smoke    # one model, two methods (the test runs this)

Noising with zero ablation (each planted circuit is exact under it: see toymi/circuits/planted.py).
"""

from __future__ import annotations

import argparse

from toymi.circuits.forward import graph_of
from toymi.circuits.methods import METHODS, discover
from toymi.circuits.patching import setup
from toymi.circuits.planted import PLANTED
from toymi.circuits.scoring import faithfulness_curve, roc_auc


def rows(models, methods):
    for model_name in models:
        p = PLANTED[model_name]()
        s = setup(p.model, p.clean, p.corrupted, direction="noising", ablation=p.ablation)
        true = graph_of(p.model.config).edge_set(p.true_edges)
        for method in methods:
            found = discover(method, p.model, s, p.metric)
            curve = faithfulness_curve(p.model, *s, p.metric, found.scores)
            exact_match = bool((found.circuit == true).all())
            yield (model_name, method, roc_auc(found.scores, true), curve.cpr, curve.cmd,
                   f"{int((found.circuit & true).sum())}/{int(true.sum())} + {int((found.circuit & ~true).sum())}",
                   exact_match, found.seconds, len(true))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one model, two methods")
    args = parser.parse_args(argv)
    models = ["copy_first"] if args.smoke else list(PLANTED)
    methods = ["exact", "eap"] if args.smoke else list(METHODS)
    print("| model | method | AUC | CPR | CMD | true found + false found | circuit exact | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for model, method, auc, cpr, cmd, found, exact, seconds, _ in rows(models, methods):
        print(f"| {model} | {method} | {auc:.3f} | {cpr:.3f} | {cmd:.3f} | {found} | {'yes' if exact else 'no'} "
              f"| {seconds:.2f} |")


if __name__ == "__main__":
    main()
