"""Subset names: the three an annotation file uses, the spellings official files and users give
them, and finding the subset a command asks for among those a file holds."""

SUBSETS = ("training", "validation", "testing")

#: Spellings of subsets in official split files and user CSVs (read case-blind).
SUBSET_ALIASES = {
    "train": "training", "training": "training", "trainval": "training",
    "val": "validation", "valid": "validation", "validate": "validation",
    "validation": "validation",
    "test": "testing", "testing": "testing",
}

#: Short names a command line may give for a subset, exactly as written. Fewer than the files'
#: spellings: 'trainval' in a split file is training data, but `--subset trainval` asked of a
#: file holding training and validation must not quietly mean the training videos alone.
COMMAND_ALIASES = {"train": "training", "val": "validation", "valid": "validation",
                   "test": "testing"}


class UnknownSubset(ValueError):
    """No entry of the file is in the subset asked for (the message lists those it has)."""


def subsets_of(database) -> set:
    """The subsets a database's entries name."""
    return {e.get("subset") for e in database.values()}


def resolve_subset(present, subset: str) -> str:
    """`subset` as spelled in the file (`present`: the subsets its entries name): the name
    itself, else the subset its COMMAND_ALIASES entry stands for ('val', 'train', ...)."""
    present = set(present)
    if subset in present:
        return subset
    alias = COMMAND_ALIASES.get(subset)
    if alias in present:
        return alias
    raise UnknownSubset(f"no video in subset '{subset}'; the file has "
                        f"{', '.join(sorted(str(s) for s in present))}")
