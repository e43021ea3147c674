"""The ``ledgerlearn`` command line: one Typer app built from small command modules."""
