"""patchgen: declarative patch specs compiled into readable, self-contained modeling files.

The stages, one package each, bottom to top (each imports only the ones before it): `syntax` (source
text and trees), `dsl` (`PatchConfig`, `PatchSet`), `load` (configs, upstream, patch code resolved),
`plan` (config + upstream -> validated edits), `render` (edits -> formatted, written files), `verify`
(generated files imported for real), `upgrade` (lock files, what an upstream change touches), and
`commands` on top (`run_codegen`, `check_patchgen`, `upgrade_report`, `new_model`, the `patchgen`
script). `patchgen.run_codegen` etc. stay as stable aliases. Generated files import only
`patchgen.runtime` from this package.
"""

from patchgen.dsl.errors import PatchgenError
from patchgen.dsl.patch_spec import Patch, PatchConfig, PatchKind, create_patch_from_external


__all__ = ["Patch", "PatchConfig", "PatchKind", "PatchgenError", "create_patch_from_external"]
