"""``python -m lrokit``: the ``lrokit`` command."""

from ._cli import main

raise SystemExit(main())
