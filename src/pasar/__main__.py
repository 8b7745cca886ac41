"""``python -m pasar`` is the same as the ``pasar`` command."""

import sys

from pasar.cli.main import main

sys.exit(main())
