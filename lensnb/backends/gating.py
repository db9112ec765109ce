"""Which hooks of a hooked model are switched off (they exist but never fire), through the public
route: ``HookedRootModule.check_hooks_to_add``, the documented place where a model refuses a hook.
TransformerBridge raises ``ValueError`` there for a hook gated off by a config flag
(``hook_result`` without ``use_attn_result``, ``hook_q_input`` without
``use_split_qkv_input``, ...); lensnb's ``HookedMllama`` never refuses one."""

from __future__ import annotations

from typing import Any


def _noop(tensor: Any, hook: Any) -> None:
    return None


def gated_hooks(model: Any) -> frozenset[str]:
    """The names in ``model.hook_dict`` that cannot fire with its flags as they are now."""
    dead = set()
    for name, point in model.hook_dict.items():
        try:
            model.check_hooks_to_add(point, name, _noop)
        except ValueError:
            dead.add(name)
    return frozenset(dead)
