"""hookgate's demo flows, named in config/gateway.toml."""
