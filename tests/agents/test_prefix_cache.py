"""The HF backend's prefix cache: longest common prefix, bounded size, least recently used out first."""
import torch

from longshort.agents.hf_backend import PrefixCache


def kv(ids):
    """One layer whose keys and values at position i hold the token id there, so slices can be checked."""
    t = torch.tensor(ids, dtype=torch.float32).view(1, -1, 1)
    return [(t, -t)]


def test_lookup_finds_the_longest_common_prefix_and_leaves_the_last_token():
    cache = PrefixCache(max_tokens=100)
    cache.add((1, 2, 3, 4), kv([1, 2, 3, 4]))
    cache.add((1, 2, 9), kv([1, 2, 9]))
    n, layers = cache.lookup((1, 2, 3, 7, 8))
    assert n == 3 and layers[0][0].flatten().tolist() == [1, 2, 3] and layers[0][1].flatten().tolist() == [-1, -2, -3]
    assert cache.lookup((1, 2, 3, 4))[0] == 3  # the last token is left to compute its logits
    assert cache.lookup((5, 1, 2)) == (0, None)


def test_size_is_bounded_and_the_least_recently_used_goes_first():
    cache = PrefixCache(max_tokens=10)
    cache.add((1, 2, 3, 4), kv([1, 2, 3, 4]))
    cache.add((5, 6, 7, 8), kv([5, 6, 7, 8]))
    cache.lookup((1, 2, 3, 0))  # (1, 2, 3, 4) is now the most recent
    cache.add((9, 9, 9), kv([9, 9, 9]))
    assert cache.tokens <= 10 and set(cache.entries) == {(1, 2, 3, 4), (9, 9, 9)}
    cache.add((1, 2, 3, 4, 5, 6), kv([1, 2, 3, 4, 5, 6]))  # replaces its own prefix
    assert set(cache.entries) == {(9, 9, 9), (1, 2, 3, 4, 5, 6)} and cache.tokens == 9
    cache.add(tuple(range(11)), kv(list(range(11))))  # larger than the whole cache: not kept
    assert tuple(range(11)) not in cache.entries
