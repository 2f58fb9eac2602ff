"""The pretraining engine: data, distributed training, schedules, checkpoints and evaluation."""
