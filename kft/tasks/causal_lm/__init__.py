"""Causal language modelling: fine-tuning a keras-hub CausalLM, sampling and
its export."""
