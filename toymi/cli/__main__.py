"""`python -m toymi.cli ...`, the same as the `toymi` console script."""

import sys

from toymi.cli import main

sys.exit(main())
