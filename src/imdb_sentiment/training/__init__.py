"""Training: the network and its fast training layers, the optimizer, batches, distribution,
the linear baseline, and the orchestration of teachers and student (fitting)."""
