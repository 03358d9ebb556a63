"""T-GRPO (spec section 4): the algorithm as tensor functions, rollouts, log-probs, and the trainer.

The names below are imported on first use (PEP 562), not with the package: ``videor1.rl.algorithm`` and
``videor1.rl.policy`` need only torch and transformers, while the trainer and rollouts pull in media, rewards and
generation (av, jiwer, nltk, rouge_score). ``bench/gpu_step.py`` runs on a GPU image that has none of those.
``from videor1.rl import RLTrainer`` works as before; the rollout function is ``videor1.rl.rollout.rollout`` (the
package's ``rollout`` is its submodule).
"""

import importlib as _importlib

_EXPORTS = {
    "LOSS_AGGREGATIONS": "algorithm",
    "group_advantages": "algorithm",
    "policy_loss": "algorithm",
    "shape_rewards": "algorithm",
    "RLConfig": "config",
    "completion_logprobs": "policy",
    "Group": "rollout",
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
