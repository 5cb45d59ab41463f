"""`python -m kasf`: the same as the `kasf` command."""

import sys

from .cli import main

sys.exit(main())
