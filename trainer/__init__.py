"""Rankery's trainer: SFT, reward model and PPO(-ptx) on export snapshots (design section 1).

Each stage is one module (`trainer.sft`, `trainer.rm`, `trainer.ppo`) run from the command line
(`rankery train STAGE ...`, `python -m trainer.STAGE ...` or `accelerate launch -m trainer.STAGE
...`). This package does not import `app`, and importing it does not import torch: the snapshot
reader and the configuration work without the `train` extra.
"""

STAGES = ("sft", "rm", "ppo")
