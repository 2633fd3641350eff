"""`python -m tui.cli`: the same as the `ganmgr` command."""

import sys

from tui.cli.main import main

sys.exit(main())
