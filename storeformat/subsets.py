"""Subset names: the three an annotation file uses, the spellings official files and users give
them, and finding the subset a command asks for among those a file holds."""

SUBSETS = ("training", "validation", "testing")

#: Spellings of subsets in official files, user CSVs and command lines.
SUBSET_ALIASES = {
    "train": "training", "training": "training", "trainval": "training",
    "val": "validation", "valid": "validation", "validate": "validation",
    "validation": "validation",
    "test": "testing", "testing": "testing",
}


class UnknownSubset(ValueError):
    """No entry of the file is in the subset asked for (the message lists those it has)."""


def subsets_of(database) -> set:
    """The subsets a database's entries name."""
    return {e.get("subset") for e in database.values()}


def resolve_subset(present, subset: str) -> str:
    """`subset` as spelled in the file (`present`: the subsets its entries name): the name
    itself, else the subset its alias stands for ('val', 'train', 'test', ...)."""
    present = set(present)
    if subset in present:
        return subset
    alias = SUBSET_ALIASES.get(str(subset).strip().lower())
    if alias in present:
        return alias
    raise UnknownSubset(f"no video in subset '{subset}'; the file has "
                        f"{', '.join(sorted(str(s) for s in present))}")
