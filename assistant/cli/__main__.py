"""``python -m assistant.cli``: the same as the ``lastmile`` command."""

import sys

from assistant.cli import main

sys.exit(main())
