"""LoCoMo retrieval benchmark; the code lives in ``assistant.bench.locomo`` so that
``lastmile bench locomo`` runs the very same thing.

    python benchmarks/locomo.py --data ../shared/data/locomo/locomo_dev.json [--k 5,10] [--json] [--baseline]
"""

from assistant.bench.locomo import main

if __name__ == "__main__":
    raise SystemExit(main())
