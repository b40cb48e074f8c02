"""trexport: put dynamic token-reduction transformers into production."""

__version__ = "0.1.0"
