"""``python -m dd_live`` is the ``dd-live`` command."""

from dd_live.cli import main

raise SystemExit(main())
