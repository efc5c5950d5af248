"""Stable alias: `patchgen.patch_sets` is `patchgen.dsl.patch_sets` (moved in issue 20).

Kept for users; importing it imports the moved module. Code in this repository imports `patchgen.dsl.patch_sets`.
"""

import sys

from patchgen.dsl import patch_sets as _moved


sys.modules[__name__] = _moved
