"""``python -m cli``: the ``wattflow`` command."""

import sys

from cli.main import main

sys.exit(main())
