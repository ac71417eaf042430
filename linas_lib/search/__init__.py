"""Search drivers: the LINAS loop and validation-only search, over the core steps."""
