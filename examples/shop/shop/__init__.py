"""The example shop: api, payments, inventory and datastore services (see docs/shop-lab.md)."""

from .labfaults import crash_if_looping

# The lab's crash-loop fault: a start that must fail exits here, before the service is imported.
crash_if_looping()
