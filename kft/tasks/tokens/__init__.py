"""Token classification (NER): a tag per word, entity-level metrics, its export
and report."""
