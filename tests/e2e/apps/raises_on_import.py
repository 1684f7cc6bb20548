raise RuntimeError("failing at import")
