"""``python -m protectflow.cli``, as the ``protectflow`` command."""

import sys

from protectflow.cli import main

sys.exit(main())
