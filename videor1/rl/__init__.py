"""T-GRPO (spec section 4): the algorithm as tensor functions, rollouts, log-probs, and the trainer.

The names below are imported on first use (PEP 562), not with the package: ``videor1.rl.algorithm`` and
``videor1.rl.policy`` need only torch and transformers, while the trainer and rollouts pull in media, rewards and
generation (av, jiwer, nltk, rouge_score). ``bench/gpu_step.py`` runs on a GPU image that has none of those.
``from videor1.rl import RLTrainer`` works as before.
"""

import importlib as _importlib
import sys as _sys
import types as _types

_EXPORTS = {
    "LOSS_AGGREGATIONS": "algorithm",
    "group_advantages": "algorithm",
    "policy_loss": "algorithm",
    "shape_rewards": "algorithm",
    "RLConfig": "config",
    "completion_logprobs": "policy",
    "Group": "rollout",
    "rollout": "rollout",
    "shuffle_frames": "rollout",
    "RLTrainer": "trainer",
    "data_order": "trainer",
    "group_rewards": "trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS})


class _Package(_types.ModuleType):
    """Keeps ``videor1.rl.rollout`` the function, as the eager ``from .rollout import rollout`` left it: importing
    the submodule ``videor1.rl.rollout`` (the trainer does) would otherwise bind the package's ``rollout`` to it."""

    def __setattr__(self, name, value):
        if name == "rollout" and isinstance(value, _types.ModuleType) and value.__name__ == f"{__name__}.rollout":
            value = value.rollout
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
