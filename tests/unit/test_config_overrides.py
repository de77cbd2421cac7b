"""Command-line overrides merged into a config section: validated like the section, errors named by their key."""

from __future__ import annotations

import pytest

from tunewise.config import CurationSpec
from tunewise.config.overrides import with_overrides
from tunewise.errors import InputError


def test_overrides_apply_and_none_means_not_given() -> None:
    section = CurationSpec(seed=3)
    assert with_overrides(section, {"seed": None, "pii_mode": None}, field="curation") is section
    changed = with_overrides(
        section, {"pii_mode": "hash", "split_ratios": (0.6, 0.2, 0.2), "seed": None}, field="curation"
    )
    assert isinstance(changed, CurationSpec) and changed.pii_mode == "hash" and changed.split_ratios == (0.6, 0.2, 0.2)
    assert changed.seed == 3 and section.pii_mode == "mask"


def test_invalid_override_names_the_key() -> None:
    with pytest.raises(InputError) as info:
        with_overrides(CurationSpec(), {"pii_mode": "shred"}, field="curation")
    assert info.value.field == "curation.pii_mode"
    with pytest.raises(InputError, match="sum") as info:  # a check of the whole section names the section
        with_overrides(CurationSpec(), {"split_ratios": (0.5, 0.2, 0.2)}, field="curation")
    assert info.value.field == "curation"
