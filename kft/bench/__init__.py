"""kft-benchmark: same-work speed comparisons with the Keras and PyTorch
peers."""
