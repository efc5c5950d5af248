"""What a patch depends on upstream, and what an upstream change does to it.

Takes patches and the upstream they were generated against; hands on the upstream names patched
code uses, each patch's code closure, lock-file fingerprints and classified diff hunks.
"""
