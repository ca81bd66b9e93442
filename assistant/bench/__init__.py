"""The suites behind ``lastmile bench`` (one module each, with a ``main(argv)``).

``locomo``: memory retrieval recall@k on LoCoMo-format conversations (the data set and
its metric in ``locomo_eval``); ``faults``: the provider fault matrix through a real
``Assistant`` against ``assistant.testing.FaultServer``. The scripts in ``benchmarks/``
call these same functions; docs/benchmarks.md has the figures.
"""
