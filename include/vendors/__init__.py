"""Vendor data-sharing manifests (docs/vendor_sharing_manifests.md) and the CCPA right to know: what was shared with whom, proven."""
