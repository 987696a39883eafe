"""``python -m xferlab`` is the same as the ``xferlab`` console script."""
from xferlab.cli import main

raise SystemExit(main())
