"""The HF backend's prefix cache: longest common prefix, bounded size, least recently used out first."""
import torch

from longshort.agents.hf_backend import PrefixCache

B = PrefixCache.BLOCK


def kv(ids):
    """One layer whose keys and values at position i hold the token id there, so slices can be checked."""
    t = torch.tensor(ids, dtype=torch.float32).view(1, -1, 1)
    return [(t, -t)]


def seq(*parts):
    return tuple(x for part in parts for x in part)


def test_lookup_finds_the_longest_common_prefix_and_leaves_the_last_token():
    cache = PrefixCache(max_tokens=1000)
    shared = tuple(range(100, 100 + 2 * B + 3))
    a, b = seq(shared, (1, 2, 3)), seq(shared[: B + 1], (9,) * 20)
    cache.add(a, kv(a))
    cache.add(b, kv(b))
    n, layers = cache.lookup(seq(shared, (1, 7, 8)))
    assert n == len(shared) + 1  # past the last whole block, token by token
    assert layers[0][0].flatten().tolist() == list(a[:n]) and layers[0][1].flatten().tolist() == [-x for x in a[:n]]
    assert cache.lookup(a)[0] == len(a) - 1  # the last token is left to compute its logits
    assert cache.lookup(seq(b[: B + 1], (5,) * 10))[0] == B + 1
    assert cache.lookup(seq((7,), a)) == (0, None)


def test_size_is_bounded_and_the_least_recently_used_goes_first():
    cache = PrefixCache(max_tokens=5 * B)
    first, second, third = (tuple(range(k * 1000, k * 1000 + 2 * B)) for k in (1, 2, 3))
    cache.add(first, kv(first))
    cache.add(second, kv(second))
    cache.lookup(seq(first, (0,)))  # first is now the most recent
    cache.add(third, kv(third))
    assert cache.tokens <= 5 * B and set(cache.entries) == {first, third}
    assert cache.lookup(seq(second, (0,))) == (0, None)
    longer = seq(first, (5,) * B)
    cache.add(longer, kv(longer))  # replaces its own prefix
    assert set(cache.entries) == {third, longer} and cache.tokens == 5 * B
    huge = tuple(range(6 * B))
    cache.add(huge, kv(huge))  # larger than the whole cache: not kept
    assert huge not in cache.entries
    assert [cache.wants(ids) for ids in (huge, third, second)] == [False, False, True]  # asked before gathering
