"""``python -m eoslab.cli``: the ``eoslab`` command."""

import sys

from eoslab.cli import main

sys.exit(main())
