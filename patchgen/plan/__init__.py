"""Planning: config + upstream -> a validated list of text edits on the upstream file.

Takes the loaded config, upstream and resolved patch code; hands on a `Plan` (edits, banners,
applied patches). The plan-time checks (`validation`, `import_order`) live here because the planner
runs them before it hands a plan on; `context` is the state one planning run shares (a leaf).
"""
