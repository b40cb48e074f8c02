"""Importers of upstream checkpoints into trexport model classes."""

from trexport.models.importers.hf_bert import from_hf_bert, pretrained_minilm_dir

__all__ = ["from_hf_bert", "pretrained_minilm_dir"]
