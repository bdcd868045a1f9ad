"""``python -m pccore``: the pccore command."""

from .cli import main

raise SystemExit(main())
