"""The prediction record's one home: its type (`record`), its writer (`log`, used by the
predictor) and the call outcomes joined to it (`outcomes`, read by `prepare` and `retrain`).
`monitor` reads the log in chunks through `monitoring/log_scan.py`, decoding it with `record`."""
