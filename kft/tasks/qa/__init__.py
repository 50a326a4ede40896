"""Extractive question answering: answer spans in passages, SQuAD metrics, its
export and report."""
