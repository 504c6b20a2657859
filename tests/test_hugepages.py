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


def test_overlapping_blocks_put_the_setting_back_only_when_the_last_ends():
    # two encodes on two threads: the first to end must not switch the advice back under the other
    before = multiarray._set_madvise_hugepage(True)
    try:
        first, second = numpy_hugepages(False), numpy_hugepages(False)
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert multiarray._get_madvise_hugepage() is False
        second.__exit__(None, None, None)
        assert multiarray._get_madvise_hugepage() is True
    finally:
        multiarray._set_madvise_hugepage(before)
