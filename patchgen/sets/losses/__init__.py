"""The causal-LM and multimodal forwards whose loss never materialises the logits while training."""
