"""The provider fault matrix; the code lives in ``assistant.bench.faults`` so that
``lastmile bench faults`` runs the very same thing.

    python benchmarks/faults.py [--json] [--turns N] [--degraded scripted|local] [--faults 500,hang]
"""

from assistant.bench.faults import main

if __name__ == "__main__":
    raise SystemExit(main())
