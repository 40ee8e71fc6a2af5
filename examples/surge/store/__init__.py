"""A storefront under a seasonal surge: api, catalogue, orders, payments.

See docs/examples/surge.md.
"""
