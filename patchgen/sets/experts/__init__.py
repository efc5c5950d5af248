"""Routed-experts sets: the experts kernels registered through transformers' experts dispatch
(`set_experts_implementation` keeps working), torch and Liger.
"""
