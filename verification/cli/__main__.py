"""``python -m verification.cli``: the ``evidence`` command."""

from __future__ import annotations

import sys

from verification.cli.main import main

sys.exit(main())
