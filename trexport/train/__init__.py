"""Training recipes. This package holds the quick sample recipe; full recipes build on ``common``."""
