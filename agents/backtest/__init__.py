"""The backtester: strategies over historical candles with the live decision code, in process.

A tool, not an agent (decision 0005): the one package that imports the agents' pure modules —
indicators, strategies, sizing — and the paper exchange's fill rules. Entry points:
``engine.run_backtest`` and ``tradebus backtest`` (``cli.backtest_command``). Kept import-light
so the ``tradebus`` command line starts fast.
"""
