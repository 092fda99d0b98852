"""Backend adapters, loaded through the `cronframework.backends` entry points.

They import the core, never the reverse.
"""
