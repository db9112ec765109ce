"""The hooked-model backend: loading, facts, hook names, KV groups."""
