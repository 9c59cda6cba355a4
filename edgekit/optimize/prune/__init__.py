"""Pruning wing: structured channel pruning with Torch-Pruning, measured before/after.

``prune`` (options and verb), ``structure`` (the channel pruning itself), ``shufflenet`` (the family
that needs its own pass), ``config`` (pickle-free channel configuration), ``source`` (what is pruned).
The paired before/after latency lives on the torch-free side: :mod:`edgekit.bench.paired_latency`.
"""
