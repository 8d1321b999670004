"""ResourceSlots: which custom resource addresses of one executor its running tasks hold.

Each address has a capacity of 1; a task takes a whole address or a share of one
(`TaskRequirement`), so that tasks asking 0.5 GPU run two to an address and no
address is ever held beyond its capacity. Plain bookkeeping under the task
scheduler's lock: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

from scheduler.resource.profile import TaskRequirement

__all__ = ["ResourceSlots"]


class ResourceSlots:
    """Free capacity of each address of one executor's custom resources."""

    def __init__(self, resources: Mapping[str, Sequence[str]]) -> None:
        self._free: dict[str, dict[str, Fraction]] = {
            name: {address: Fraction(1) for address in addresses}
            for name, addresses in resources.items()
        }

    @property
    def names(self) -> list[str]:
        """The resources it has."""
        return sorted(self._free)

    def addresses(self) -> dict[str, list[str]]:
        """Every address of each resource, free or not."""
        return {name: list(free) for name, free in self._free.items()}

    def fits(self, wanted: Mapping[str, TaskRequirement]) -> bool:
        """Whether one more task needing `wanted` could take its addresses now."""
        for name, (count, share) in wanted.items():
            free = self._free.get(name, {})
            if sum(1 for left in free.values() if left >= share) < count:
                return False
        return True

    def acquire(self, wanted: Mapping[str, TaskRequirement]) -> dict[str, list[str]] | None:
        """Take what one task needs and say which addresses; None (taking nothing) if short."""
        chosen: dict[str, list[str]] = {}
        for name, (count, share) in wanted.items():
            free = self._free.get(name, {})
            # Fill addresses others already share before opening a fresh one.
            fits = sorted(
                (a for a, left in free.items() if left >= share),
                key=lambda a: (free[a], list(free).index(a)),
            )
            if len(fits) < count:
                return None
            chosen[name] = fits[:count]
        for name, addresses in chosen.items():
            share = wanted[name][1]
            for address in addresses:
                self._free[name][address] -= share
        return chosen

    def release(
        self, held: Mapping[str, Sequence[str]], wanted: Mapping[str, TaskRequirement]
    ) -> None:
        """Give back what `acquire` took for one task."""
        for name, addresses in held.items():
            share = wanted[name][1]
            for address in addresses:
                free = self._free.get(name)
                if free is not None and address in free:
                    free[address] = min(Fraction(1), free[address] + share)

    def free_capacity(self, wanted: Mapping[str, TaskRequirement]) -> int | None:
        """How many more such tasks fit now (None: it asks no custom resource)."""
        fits: int | None = None
        for name, (count, share) in wanted.items():
            free = self._free.get(name, {})
            total = sum(int(left // share) for left in free.values()) // max(1, count)
            fits = total if fits is None else min(fits, total)
        return fits

    def capacity(self, wanted: Mapping[str, TaskRequirement]) -> int | None:
        """How many such tasks fit when nothing runs (None: it asks no custom resource)."""
        fits: int | None = None
        for name, (count, share) in wanted.items():
            per_address = int(1 / share)
            total = len(self._free.get(name, {})) * per_address // max(1, count)
            fits = total if fits is None else min(fits, total)
        return fits
