"""patchgen: declarative patch specs compiled into readable, self-contained modeling files.

The DSL lives in `patchgen.patch_spec`; the pipeline stages are `discovery`, `upstream`,
`patch_source`, `plan`, `render`, `formatting`, `outputs`, tied together by `codegen`. The CLIs are
`patchgen.run_codegen` and `patchgen.check_patchgen`. Generated files import only
`patchgen.runtime` from this package.
"""

from patchgen.errors import PatchgenError
from patchgen.patch_spec import Patch, PatchConfig, PatchKind, create_patch_from_external


__all__ = ["Patch", "PatchConfig", "PatchKind", "PatchgenError", "create_patch_from_external"]
