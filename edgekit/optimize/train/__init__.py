"""Training wing: fine-tuning / transfer learning and the shared training loop.

``finetune`` (options and verb), ``transfer`` (base model and head), ``distill`` (the loop and the
knowledge-distillation loss), ``loop`` (config, records, progress), ``augment`` / ``batches`` /
``splits`` (numpy data side).
"""
