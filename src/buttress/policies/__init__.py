"""One module per policy.  Each policy is a plain, validated configuration object whose decisions
are sans-I/O; its ``sync_layer`` / ``async_layer`` methods build the thin executors the pipeline
chains."""
