"""The example shop: api, payments, inventory and datastore services (see docs/shop-lab.md)."""
