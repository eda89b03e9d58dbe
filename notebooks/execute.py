"""Run notebooks top to bottom in place, keeping their outputs: `python notebooks/execute.py notebooks/02_grokking.ipynb`.

Full mode by default (the real runs whose outputs are committed); `TOYMI_SMOKE=1` for the tiny CI settings. The
kernel starts in the notebook's own folder, as it would in Jupyter. Prints each notebook's wall time.
"""

import argparse
import time
from pathlib import Path

import nbclient
import nbformat


def execute(path: Path, timeout: int) -> float:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    nbformat.write(notebook, path)  # only after every cell ran: a failing notebook keeps its previous outputs
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=7200, help="seconds allowed per cell")
    args = parser.parse_args()
    for path in args.notebooks:
        print(f"{path}: {execute(path, args.timeout):.0f} s", flush=True)


if __name__ == "__main__":
    main()
