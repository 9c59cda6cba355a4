"""Torch-free foundations: errors, specs, manifests, atomic io, hashing.

Only the standard library and numpy may be imported here; this package runs on
every device edgekit supports.
"""
