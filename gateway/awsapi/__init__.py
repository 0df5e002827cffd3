"""The AWS-compatible HTTP API: one port, many services, SigV4-verified."""
