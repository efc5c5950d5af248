"""Stable alias: `patchgen.patch_spec` is `patchgen.dsl.patch_spec` (moved in issue 20).

Kept for users; importing it imports the moved module. Code in this repository imports `patchgen.dsl.patch_spec`.
"""

import sys

from patchgen.dsl import patch_spec as _moved


sys.modules[__name__] = _moved
