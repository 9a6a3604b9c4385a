"""Test-support helpers for sigmahunt (not part of the installed package)."""
