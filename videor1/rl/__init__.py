"""T-GRPO (spec section 4): the algorithm as tensor functions, rollouts, log-probs, and the trainer."""

from .algorithm import LOSS_AGGREGATIONS, group_advantages, policy_loss, shape_rewards
from .config import RLConfig
from .policy import completion_logprobs
from .rollout import Group, rollout, shuffle_frames
from .trainer import RLTrainer, data_order, group_rewards

__all__ = [
    "LOSS_AGGREGATIONS",
    "Group",
    "RLConfig",
    "RLTrainer",
    "completion_logprobs",
    "data_order",
    "group_advantages",
    "group_rewards",
    "policy_loss",
    "rollout",
    "shape_rewards",
    "shuffle_frames",
]
