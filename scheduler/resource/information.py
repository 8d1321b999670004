"""ResourceInformation: a resource's name and the addresses a process or task holds."""

from __future__ import annotations

__all__ = ["ResourceInformation"]


class ResourceInformation:
    """Addresses of one custom resource (a GPU's indices), as `sc.resources` and tasks see them."""

    def __init__(self, name: str, addresses: list[str]) -> None:
        self._name = name
        self._addresses = list(addresses)

    @property
    def name(self) -> str:
        """The resource's name (`gpu`)."""
        return self._name

    @property
    def addresses(self) -> list[str]:
        """Its addresses, as the discovery script gave them."""
        return self._addresses

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceInformation):
            return NotImplemented
        return (self._name, self._addresses) == (other._name, other._addresses)

    def __hash__(self) -> int:
        return hash((self._name, tuple(self._addresses)))

    def __repr__(self) -> str:
        return f"ResourceInformation(name={self._name!r}, addresses={self._addresses!r})"
