"""cli: the `sparkctl` command line (entry point `cli.main:main`).

Commands live in private modules and load lazily; nothing here is imported by
the cluster or the driver. Run as `sparkctl ...` or `python -m cli ...`.
"""

from __future__ import annotations

__all__: list[str] = []
