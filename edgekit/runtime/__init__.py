"""Runtime backends: one file per runtime, one Runner protocol.

Importing this package imports no runtime; each backend imports its runtime
lazily and names the extra to install when it is missing.
"""
