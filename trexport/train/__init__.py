"""Training recipes: ``finetune`` (the full model), ``tr_bert``, ``adapler`` and ``dact`` (each from a
fine-tuned model dir), the quick ``sample`` recipe, and the shared loop, data and checkpoints in ``common``."""
