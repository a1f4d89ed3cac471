"""The three leakage runs on the core: `evaluate` (the honest-but-curious server on fresh victims),
`attack` (captured or fresh updates, one model) and `malicious` (the imprint server)."""
