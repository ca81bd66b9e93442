"""Operating lastmile (issue 15): drift alarms, golden evals and canaries, shadow runs.

``drift`` compares a recent window of stored turns with a baseline window (PSI);
``suite`` and ``evals`` load and run a golden suite through the real ``Assistant``
(``lastmile eval``, and the canary inside ``serve``); ``shadow`` replays recorded user
turns through a candidate configuration; ``schedule`` puts drift checks and canaries on
the durable job queue. Each reads the stored turn records; none changes a user's history.
"""
