"""Separation: the chunked engine, the Wiener post-filter and the oracle masks."""
