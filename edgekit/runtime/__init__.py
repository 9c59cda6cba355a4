"""Runtime backends: one package per runtime (runner, capabilities, engine build), one Runner protocol.

Importing this package imports no runtime; each backend imports its runtime
lazily and names the extra to install when it is missing.
"""
