"""Classification: one class per example (softmax), its metrics and the
two-class decision threshold."""
