"""Fixtures of the export tests; they live in ``export_support`` so that test modules can import its helpers by a
name no other test folder uses."""

from export_support import prepared_dir, reference_export, tiny_bundle, tiny_set

__all__ = ["prepared_dir", "reference_export", "tiny_bundle", "tiny_set"]
