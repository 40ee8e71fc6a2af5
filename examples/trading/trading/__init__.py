"""A small trading platform with two active sites, for ``buttress lab examples/trading``:
a desk (the firm's order management system), a gateway per site, and the venue's two order-entry
gateways over one book.  See docs/examples/trading.md."""
