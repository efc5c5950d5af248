"""Loading and resolution: configs found and imported, upstream read, patch code cut and resolved.

Takes a project and its configs; hands on the loaded `PatchConfig` (with `native_code`, the patch set
the generator adds to every config), the installed upstream module's text and tree, each patch's own
source, and what every free name of patch code becomes.
"""
