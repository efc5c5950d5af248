"""Kernel sets: Liger's kernels, their pure-torch CPU twins, size-switched and compiled variants, Cut
Cross-Entropy, flash-linear-attention, and the vision-language kernels.
"""
