"""linkhealth: keep the references of a notes collection alive.

The package is a library; ``checker.cli`` is a thin click layer over it.
Stages (see DESIGN.md): notes -> extract -> targets -> probe -> classify ->
health -> store -> archive -> report.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
