"""``python -m mmemolr ...``: the same as the ``mmemolr`` command."""

import sys

from mmemolr.cli.main import main

sys.exit(main())
