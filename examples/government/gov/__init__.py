"""A government critical service (benefit claims) on two sites: portal, primary, recovery.

See docs/examples/government.md.
"""
