"""numpy's huge-page advice is switched for a block and put back after, even when the block fails."""

import pytest
from numpy._core import multiarray

from astroae_core.hugepages import numpy_hugepages


@pytest.mark.parametrize("start", [True, False])
def test_the_advice_is_switched_inside_the_block_and_put_back_after(start):
    before = multiarray._set_madvise_hugepage(start)
    try:
        with numpy_hugepages(not start) as inside:
            assert inside is (not start) and multiarray._get_madvise_hugepage() is (not start)
        assert multiarray._get_madvise_hugepage() is start
        with pytest.raises(RuntimeError), numpy_hugepages(not start):
            raise RuntimeError("the encode failed")
        assert multiarray._get_madvise_hugepage() is start
    finally:
        multiarray._set_madvise_hugepage(before)
