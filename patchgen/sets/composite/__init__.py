"""How a composite model (vision tower + text decoder) builds its parts: from the generated file's own classes."""
