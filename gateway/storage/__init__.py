"""Durable-storage primitives shared by the journal and the sinks."""
