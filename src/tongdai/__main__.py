"""``python -m tongdai`` is the ``tongdai`` command."""

import sys

from tongdai.cli import main

sys.exit(main())
