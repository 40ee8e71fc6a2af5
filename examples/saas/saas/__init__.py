"""A small multi-tenant service for ``buttress lab examples/saas`` (see docs/examples/saas.md):
a gateway admitting each tenant under its tier's contract, and eight backend instances over which
tenants are shuffle-sharded."""
