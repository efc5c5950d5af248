"""The one error type patchgen raises for bad input.

Every message is a single line that names the config, the patch and what to do, so the CLIs can
print it as-is and exit with status 2.
"""


class PatchgenError(Exception):
    """Bad input: a config, a patch or an upstream target that cannot be turned into output."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))
