"""CLI command modules; each exposes click commands that `neurofl.cli` registers."""
