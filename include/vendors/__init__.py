"""Vendor data-sharing manifests (SPEC §4.3) and the CCPA right to know: what was shared with whom, proven."""
