"""What kft fine-tunes for: each task's data, head, metrics, decision, export
and report."""
