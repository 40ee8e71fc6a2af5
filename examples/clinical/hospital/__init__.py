"""A small hospital system for `buttress lab examples/clinical` (docs/examples/clinical.md):
the clinical api, the primary patient record (records), its read replica, and the pager."""
