import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.core.sortedfloats import SortedFloats

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(st.booleans(), st.one_of(values, st.sampled_from([0.0, 1.0, 5.0]))), max_size=300))
def test_every_rank_equals_the_sorted_list_after_any_adds_and_removes(ops):
    index, naive = SortedFloats(), []
    for add, value in ops:
        if add or value not in naive:
            index.add(value)
            naive.append(value)
        else:
            index.remove(value)
            naive.remove(value)
        naive.sort()
    assert len(index) == len(naive)
    assert [index[k] for k in range(len(naive))] == naive
    if naive:
        assert index[-1] == naive[-1]


def test_chunks_split_and_emptied_ones_go_across_many_values_in_any_order():
    index, naive = SortedFloats(), []
    for i in range(12_000):
        value = float((i * 7919) % 5003)
        index.add(value)
        naive.append(value)
    naive.sort()
    assert [index[k] for k in range(0, 12_000, 37)] == naive[::37]
    for i in range(0, 12_000, 2):
        value = float((i * 7919) % 5003)
        index.remove(value)
        naive.remove(value)
    assert [index[k] for k in range(len(naive))] == naive
    with pytest.raises(ValueError):
        index.remove(math.pi)
    with pytest.raises(IndexError):
        index[len(naive)]
