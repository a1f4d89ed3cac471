"""The leakage runs on the core: `evaluate` (the honest-but-curious server on fresh victims),
`attack` (captured or fresh updates, one model), `malicious` (the imprint server) and
`privacy_utility` (defenses trained federatedly, their captures attacked by `attack`)."""
