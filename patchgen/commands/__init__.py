"""The commands, on top: `run_codegen`, `check_patchgen`, `upgrade_report`, `new_model`, `cli`.

Takes command lines; hands on files, reports and exit statuses, driving the pipeline (`codegen`,
`config_runs`). Nothing below imports this package; the old paths `patchgen.commands.run_codegen` etc. are
stable aliases of these modules.
"""
