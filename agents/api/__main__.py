"""`python -m agents.api`: the console service (same as `tradebus api`)."""

from agents.api.server import main

raise SystemExit(main())
