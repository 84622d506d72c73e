"""``python -m csae``: the same as the ``csae`` command."""

import sys

from csae.cli import main

if __name__ == "__main__":
    sys.exit(main())
