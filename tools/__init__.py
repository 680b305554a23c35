"""Development tooling (the `triage` command, local infrastructure, benchmark, demos); not in the product."""
