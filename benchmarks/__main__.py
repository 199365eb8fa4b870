"""``python -m benchmarks``: the runner (see :mod:`benchmarks.runner`)."""

from benchmarks.runner import main

raise SystemExit(main())
