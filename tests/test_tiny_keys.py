"""The tests' tiny keys paste into a shell: `tiny_keys(agent)` printed with spaces between them (to run an
agent's tiny run by hand) and read back as a shell reads them (shlex, POSIX rules) are as many keys and build
the same run: no key holds a space (`agent.mults=[2,3]`, not `[2, 3]`)."""

from __future__ import annotations

import shlex

import pytest

from iqrl.config.build import build_config

from conftest import tiny_keys


@pytest.mark.registry
def test_the_tiny_keys_survive_a_shell(agent):
    keys = tiny_keys(agent)
    pasted = shlex.split(" ".join(keys))
    assert len(pasted) == len(keys), (
        f"a shell splits these keys: {[k for k in keys if len(shlex.split(k)) != 1]}"
    )
    assert build_config(pasted) == build_config(keys)
