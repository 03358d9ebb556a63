"""SFT cold start (spec section 1): chat examples with assistant-only labels, and the Trainer around them."""

from .data import IGNORE_INDEX, SftCollator, SftDataset, assistant_start, assistant_text, chat
from .trainer import SftConfig, SftTrainer, last_complete_checkpoint, loss_curve, peak_memory_mb

__all__ = [
    "IGNORE_INDEX",
    "SftCollator",
    "SftConfig",
    "SftDataset",
    "SftTrainer",
    "assistant_start",
    "assistant_text",
    "chat",
    "last_complete_checkpoint",
    "loss_curve",
    "peak_memory_mb",
]
