"""``python -m telefunc`` runs the ``telefunc`` command."""

import sys

from telefunc.cli import main

sys.exit(main())
