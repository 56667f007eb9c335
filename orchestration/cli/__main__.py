"""``python -m orchestration.cli`` is the ``registry`` command."""

import sys

from orchestration.cli.main import main

sys.exit(main())
