"""The content-addressed array cache: memory and disk, keyed by what a result depends on."""

import numpy as np

from infi.cache import ArrayCache, cache_key
from infi.demo.world import from_world, generate_world
from infi.session import Session


def test_cache_makes_the_second_embedding_free(tmp_path):
    cache = ArrayCache(tmp_path)
    images = from_world(generate_world(40, seed=3))
    s1 = Session(cache=cache)
    s1.set_dataset(images)
    s1.set_encoder("demo")
    first = s1.embed(patches=False)
    assert cache.misses == 1
    s2 = Session(cache=ArrayCache(tmp_path))  # a fresh process reads the disk entry
    s2.set_dataset(images)
    s2.set_encoder("demo")
    second = s2.embed(patches=False)
    assert s2.cache.hits == 1 and np.array_equal(first.global_, second.global_)
    assert cache_key("a", 1) == cache_key("a", 1) != cache_key("a", 2)
